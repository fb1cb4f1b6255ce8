using System.Text.Json;
using DualLora.Data;
using DualLora.Evaluation;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;
using Microsoft.ML.Tokenizers;
using SkiaSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Evaluation;

public sealed class GenerationEvaluatorTests : IDisposable
{
    // A character-level vocabulary, as the collator's tests use: every character is one token, id = 3 + its index.
    const string Alphabet = "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:?.,!";

    // Three tasks of the three kinds, one sample without a task, and a text-only sample.
    const string Samples = """
        [
          {"id": "n1", "image": "a.png", "task": "name", "conversations": [{"from": "human", "value": "<image>\nWhat is at the top left?"}, {"from": "gpt", "value": "Shirt."}]},
          {"id": "n2", "image": "b.png", "task": "name", "conversations": [{"from": "human", "value": "<image>\nWhat is at the centre?"}, {"from": "gpt", "value": "Bag"}]},
          {"id": "l1", "image": "a.png", "task": "list", "conversations": [{"from": "human", "value": "<image>\nList the items."}, {"from": "gpt", "value": "shirt, bag, shirt"}]},
          {"id": "l2", "image": "b.png", "task": "list", "conversations": [{"from": "human", "value": "<image>\nList the items."}, {"from": "gpt", "value": "coat, sandal"}]},
          {"id": "c1", "image": "a.png", "task": "caption", "conversations": [{"from": "human", "value": "<image>\nDescribe it."}, {"from": "gpt", "value": "A shirt lies above a bag on the floor."}]},
          {"id": "c2", "task": "caption", "conversations": [{"from": "human", "value": "Describe a coat."}, {"from": "gpt", "value": "A long coat with two pockets and a belt."}]},
          {"id": "m1", "image": "b.png", "conversations": [{"from": "human", "value": "<image>\nHow many?"}, {"from": "gpt", "value": "Two."}, {"from": "human", "value": "And bags?"}, {"from": "gpt", "value": "One."}]}
        ]
        """;

    readonly TempFolder _folder = new();
    readonly LlavaInstructionData _data;
    readonly LlamaTokenizer _tokenizer;
    readonly InstructionCollator _collator;
    readonly LlavaModel _model;

    public GenerationEvaluatorTests()
    {
        WritePng(_folder.File("a.png"), 60);
        WritePng(_folder.File("b.png"), 200);
        File.WriteAllText(_folder.File("eval.json"), Samples);
        _data = LlavaInstructionData.Load(_folder.File("eval.json"));
        SentencePieceModelFile.WriteBpe(_folder.File("tokenizer.model"), Alphabet.Select((c, i) => (c.ToString(), -(float)i)).ToList());
        _tokenizer = HuggingFaceModels.LoadTokenizer(_folder.Path);
        _collator = InstructionCollator.For(_tokenizer, ImagePreprocessing.Grey(6));
        // Untrained: it answers with whatever characters its random weights prefer.
        _model = Weights.Randomize(new LlavaModel(new LlavaConfig(
            new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3, NumChannels: 1),
            new LlamaConfig(VocabSize: 3 + Alphabet.Length, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1))), 3, 0.5);
    }

    public void Dispose()
    {
        _model.Dispose();
        _folder.Dispose();
    }

    static void WritePng(string path, byte grey)
    {
        using var bitmap = new SKBitmap(12, 12, SKColorType.Gray8, SKAlphaType.Opaque);
        bitmap.Erase(new SKColor(grey, grey, grey));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    [Fact]
    public void The_files_beside_each_other_recompute_every_task_score()
    {
        var evaluator = new GenerationEvaluator(_model, _tokenizer, _collator, new EvaluationOptions(BatchSize: 3, MaxNewTokens: 12));
        var result = evaluator.Evaluate(_data);
        var output = _folder.File("out");
        result.Write(output);

        Assert.Equal(["name", "list", "caption", "all"], result.Tasks.Select(t => t.Task));
        Assert.Equal([AnswerKind.Short, AnswerKind.List, AnswerKind.FreeText, AnswerKind.Short], result.Tasks.Select(t => t.Kind!.Value));

        var lines = File.ReadAllLines(Path.Combine(output, EvaluationResult.PredictionsFile)).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.Equal(_data.Samples.Select(s => s.Id), lines.Select(l => l.GetProperty("id").GetString()));
        Assert.Contains(lines, l => l.GetProperty("prediction").GetString()!.Length > 0);   // the model did answer something
        // The reference is the last answer, the prompt everything before it as the model saw it (<s> and </s> not shown).
        var multi = lines.Single(l => l.GetProperty("id").GetString() == "m1");
        Assert.Equal("One.", multi.GetProperty("reference").GetString());
        Assert.Equal("USER:<image> How many? ASSISTANT: Two. USER: And bags? ASSISTANT:", multi.GetProperty("prompt").GetString());
        Assert.Equal("all", multi.GetProperty("task").GetString());
        Assert.Contains("\"prompt\":\"USER:<image> How many?", File.ReadAllText(Path.Combine(output, EvaluationResult.PredictionsFile)));   // readable, not \u003C

        using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, EvaluationResult.MetricsFile)));
        var rows = metrics.RootElement.GetProperty("tasks").EnumerateArray().ToList();
        Assert.Equal(4, rows.Count);
        foreach (var row in rows)
        {
            var task = row.GetProperty("task").GetString();
            var members = lines.Where(l => l.GetProperty("task").GetString() == task).ToList();
            Assert.Equal(members.Count, row.GetProperty("n").GetInt32());
            foreach (var metric in new[] { "exact_match", "precision", "recall", "f1", "order", "rouge_l" })
            {
                Assert.Equal(row.TryGetProperty(metric, out var value), members[0].TryGetProperty(metric, out _));
                if (value.ValueKind == JsonValueKind.Number)
                    Assert.Equal(members.Average(m => m.GetProperty(metric).GetDouble()), value.GetDouble(), 12);
            }
            // A task's BLEU is corpus BLEU over its pairs, recomputed from the file's texts.
            if (row.TryGetProperty("bleu", out var bleu))
            {
                Assert.Equal("free_text", row.GetProperty("kind").GetString());
                var pairs = members.Select(m => (m.GetProperty("prediction").GetString()!, m.GetProperty("reference").GetString()!)).ToList();
                Assert.Equal(Bleu.Corpus(pairs), bleu.GetDouble(), 12);
                Assert.All(members, m => Assert.Equal(Bleu.Sentence(m.GetProperty("prediction").GetString()!, m.GetProperty("reference").GetString()!),
                    m.GetProperty("sentence_bleu").GetDouble(), 12));
            }
        }
        var overall = metrics.RootElement.GetProperty("overall");
        Assert.Equal(lines.Count, overall.GetProperty("n").GetInt32());
        Assert.Equal(lines.Average(l => l.GetProperty("exact_match").GetDouble()), overall.GetProperty("exact_match").GetDouble(), 12);

        var table = result.ToMarkdown();
        Assert.Contains("| caption | 2 | free_text |", table);
        Assert.Contains("| overall | 7 |", table);
    }

    [Fact]
    public void Batching_does_not_change_the_predictions()
    {
        var one = new GenerationEvaluator(_model, _tokenizer, _collator, new EvaluationOptions(BatchSize: 1, MaxNewTokens: 8)).Evaluate(_data);
        var all = new GenerationEvaluator(_model, _tokenizer, _collator, new EvaluationOptions(BatchSize: 7, MaxNewTokens: 8)).Evaluate(_data);
        Assert.Equal(one.Predictions.Select(p => p.Prediction), all.Predictions.Select(p => p.Prediction));
    }

    [Fact]
    public void Answers_equal_to_the_references_score_1_on_every_metric()
    {
        var predictions = _data.Samples.Select(sample => new Prediction(sample.Id, GenerationEvaluator.TaskOf(sample), "",
            GenerationEvaluator.Reference(sample), GenerationEvaluator.Reference(sample))).ToList();
        var result = EvaluationResult.Score(predictions);
        foreach (var row in result.Rows)
            foreach (var value in new[] { row.ExactMatch, row.Precision, row.Recall, row.F1, row.Order, row.Bleu, row.RougeL })
                if (value is { } v) Assert.Equal(1, v, 12);
        Assert.Equal(1, result.Tasks.Single(t => t.Task == "caption").Bleu!.Value, 12);
    }

    [Fact]
    public void A_caller_overrides_the_inferred_kind()
    {
        var predictions = new[] { new Prediction("1", "colours", "", "red, blue", "blue, red") };
        Assert.Equal(AnswerKind.List, EvaluationResult.Score(predictions).Tasks[0].Kind);
        var asShort = EvaluationResult.Score(predictions, new Dictionary<string, AnswerKind> { ["colours"] = AnswerKind.Short });
        Assert.Equal(new TaskScores("colours", 1, AnswerKind.Short, 0), asShort.Tasks[0]);
        var asList = EvaluationResult.Score(predictions).Tasks[0];
        Assert.Equal((0.0, 1.0, 0.5), (asList.ExactMatch, asList.F1!.Value, asList.Order!.Value));
    }

    [Fact]
    public void An_image_of_the_wrong_size_names_the_sample()
    {
        var evaluator = new GenerationEvaluator(_model, _tokenizer, _collator);
        var error = Assert.Throws<ArgumentException>(() => evaluator.Evaluate(_data.Samples.Take(1).ToList(), _ => zeros(1, 5, 5)));
        Assert.Contains("sample \"n1\"", error.Message);
        Assert.Contains("[1, 5, 5]", error.Message);
    }
}
