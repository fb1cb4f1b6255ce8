using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.Data;
using DualLora.Evaluation;
using DualLora.IO;
using DualLora.Pipelines;
using DualLora.Training;

namespace DualLora.Tests.Pipelines;

/// <summary>
/// The pipeline on a tiny llava-hf model. These tests compare runs bit for bit, and a run's initial VCE and adapter
/// weights come from the global random generator, so they run alone (nothing else may draw from it meanwhile).
/// </summary>
[Collection(ProcessStateCollection.Name)]
public sealed class FineTuningTests : IDisposable
{
    readonly TinyRun _run = new();

    public void Dispose() => _run.Dispose();

    static FineTuningResult Train(string configFile, bool resume = false, Action<TrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        using var run = FineTuning.Prepare(FineTuningConfig.Read(configFile));
        return run.Run(resume, progress, cancellation: cancellation);
    }

    [Fact]
    public void Both_stages_train_and_the_final_folder_and_the_evaluation_are_written()
    {
        string config = _run.Config();
        var result = Train(config);
        string output = _run.Out();

        // Stage 1: 3 steps of the connector; stage 2: 4 steps of adapter and connector, each with its learning rate.
        Assert.Equal([1, 2, 3], result.Stage1.Select(p => p.Step));
        Assert.Equal([1, 2, 3, 4], result.Stage2.Select(p => p.Step));
        Assert.All(result.Stage1.Concat(result.Stage2), p => Assert.True(double.IsFinite(p.Loss) && p.Loss > 0 && p.Tokens > 0));
        Assert.Equal(3, File.ReadAllLines(Path.Combine(output, "stage1", "metrics.jsonl")).Length);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(output, "stage2", "metrics.jsonl")).Length);
        // Checkpoints every 2 steps and at the end, the newest two kept.
        Assert.Equal(["step-000002", "step-000003"], TrainingCheckpoint.List(Path.Combine(output, "stage1")).Select(Path.GetFileName));
        Assert.Equal(["step-000002", "step-000004"], TrainingCheckpoint.List(Path.Combine(output, "stage2")).Select(Path.GetFileName));
        var stage2State = TrainingCheckpoint.ReadState(Path.Combine(output, "stage2", "checkpoints", "step-000004"));
        Assert.Contains(stage2State.Trainable.Keys, k => k.StartsWith("connector.vce."));
        Assert.Contains(stage2State.Trainable.Keys, k => k.Contains("self_attn.q_proj"));
        Assert.DoesNotContain(stage2State.Trainable.Keys, k => k.StartsWith("vision_tower.") || k.EndsWith("q_proj.weight"));

        string final = Path.Combine(output, "final");
        Assert.Equal(final, result.FinalFolder);
        var adapter = AdapterFiles.ReadConfig(Path.Combine(final, "adapter", AdapterFiles.ConfigFile));
        Assert.Equal((4, 8.0), (Assert.IsType<DualLoraConfig>(adapter).Rank, ((DualLoraConfig)adapter).EffectiveAlpha));
        using (var connector = SafetensorsFile.Open(Path.Combine(final, "connector.safetensors")))
        {
            Assert.Contains("connector.mm_projector.0.weight", connector.Names);
            Assert.Contains(connector.Names, n => n.StartsWith("connector.vce."));
        }
        var copy = FineTuningConfig.Read(Path.Combine(final, "finetune_config.json"));
        Assert.Equal(FineTuningConfig.Read(config) with { File = null, Vce = null }, copy with { File = null, Vce = null });

        // The evaluation: one prediction per evaluation sample, and eval on the final folder rebuilds the same model.
        string predictions = Path.Combine(output, "eval", EvaluationResult.PredictionsFile);
        Assert.Equal(["e0", "e1", "e2", "e3"], File.ReadAllLines(predictions).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("id").GetString()));
        Assert.True(File.Exists(Path.Combine(output, "eval", EvaluationResult.MetricsFile)));
        using var rebuilt = FineTunedModel.FromRun(output);
        Assert.NotNull(rebuilt.Adapters);
        string again = _run.Folder.File("again");
        rebuilt.Evaluate(LlavaInstructionData.Load(Path.Combine(_run.Root, "data", "eval.json"), Path.Combine(_run.Root, "data", "images")), new EvaluationOptions(4, 3), again);
        Assert.Equal(File.ReadAllText(predictions), File.ReadAllText(Path.Combine(again, EvaluationResult.PredictionsFile)));
    }

    [Fact]
    public void A_stage_of_0_steps_is_skipped_and_any_adapter_method_trains()
    {
        // Stage 1 skipped; a top-k mixture with its load-balancing loss in stage 2; no evaluation data.
        var result = Train(_run.Config(c =>
        {
            c["stages"]!["stage1"] = new JsonObject { ["steps"] = 0 };
            c["stages"]!["stage2"]!["steps"] = 2;
            c["adapter"] = new JsonObject { ["method"] = "moe_top_k", ["rank"] = 2, ["experts"] = 3, ["top_k"] = 2, ["aux_loss_weight"] = 0.01 };
            c["data"]!.AsObject().Remove("evaluation");
        }));
        Assert.Empty(result.Stage1);
        Assert.Equal(2, result.Stage2.Count);
        Assert.False(Directory.Exists(Path.Combine(_run.Out(), "stage1")));
        Assert.False(Directory.Exists(Path.Combine(_run.Out(), "eval")));
        Assert.Null(result.Evaluation);
        var moe = Assert.IsType<MoeLoraConfig>(AdapterFiles.ReadConfig(Path.Combine(result.AdapterFolder!, AdapterFiles.ConfigFile)));
        Assert.Equal((Routing.TopK, 3, 2, 2, 0.01), (moe.Routing, moe.Experts, moe.ExpertRank, moe.TopK, moe.AuxiliaryLossWeight));

        // Stage 2 skipped: no adapter; the final folder holds the connector stage 1 trained.
        var connectorOnly = Train(_run.Config(c =>
        {
            c["stages"]!["stage2"] = new JsonObject { ["epochs"] = 0 };
            c["data"]!.AsObject().Remove("evaluation");
            c["output"] = "connector-only";
        }, "connector-only.json"));
        Assert.Equal(3, connectorOnly.Stage1.Count);
        Assert.Null(connectorOnly.AdapterFolder);
        Assert.False(Directory.Exists(Path.Combine(connectorOnly.FinalFolder, "adapter")));
        using var rebuilt = FineTunedModel.FromRun(connectorOnly.FinalFolder);
        Assert.Null(rebuilt.Adapters);
        using var saved = SafetensorsFile.Open(connectorOnly.ConnectorFile);
        using var stage1 = SafetensorsFile.Open(Path.Combine(TrainingCheckpoint.Latest(Path.Combine(_run.Out("connector-only"), "stage1"))!, TrainingCheckpoint.TrainableFile));
        foreach (var name in stage1.Names)
            using (var a = saved.ReadTensor(name)) using (var b = stage1.ReadTensor(name)) TensorAssert.BitEqual(b, a, name);
    }

    [Theory]
    [InlineData("stage1", 2)]   // stopped in stage 1, after its checkpoint at step 2
    [InlineData("stage2", 3)]   // stopped in stage 2 one step after its checkpoint: stage 1 is not retrained, and step 3 is done again
    public void A_stopped_run_resumed_ends_bit_identical_to_an_unbroken_one(string stage, int step)
    {
        Train(_run.Config(name: "unbroken.json", change: c => c["output"] = "unbroken"));

        string config = _run.Config(name: "broken.json", change: c => c["output"] = "broken");
        using (var stop = new CancellationTokenSource())
        {
            Assert.Throws<OperationCanceledException>(() => Train(config, progress: p =>
            {
                if (p.Stage == stage && p.Step == step) stop.Cancel();
            }, cancellation: stop.Token));
        }
        Assert.False(Directory.Exists(Path.Combine(_run.Out("broken"), "final")));
        var stage1Steps = new List<int>();
        Train(config, resume: true, progress: p => { if (p.Stage == "stage1") stage1Steps.Add(p.Step); });
        Assert.Equal(stage == "stage1" ? [3] : [], stage1Steps);

        foreach (var file in new[] { "final/connector.safetensors", "final/adapter/adapter_model.safetensors", "final/adapter/adapter_config.json", "eval/predictions.jsonl" })
            Assert.True(File.ReadAllBytes(Path.Combine(_run.Out("unbroken"), file)).SequenceEqual(File.ReadAllBytes(Path.Combine(_run.Out("broken"), file))), $"{file} differs");
        // metrics.jsonl reads as one unbroken run: the losses equal, step for step.
        foreach (var name in new[] { "stage1", "stage2" })
        {
            double[] Losses(string run) => File.ReadAllLines(Path.Combine(_run.Out(run), name, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>()).ToArray();
            Assert.Equal(Losses("unbroken"), Losses("broken"));
        }
    }

    [Fact]
    public void A_fresh_run_into_a_used_output_folder_is_refused()
    {
        string config = _run.Config();
        Directory.CreateDirectory(_run.Out());
        File.WriteAllText(Path.Combine(_run.Out(), "notes.txt"), "mine");
        var error = Assert.Throws<InvalidFileException>(() => FineTuning.CheckOutput(FineTuningConfig.Read(config), resume: false));
        Assert.Equal($"{config}: field 'output': {_run.Out()} is not empty; resume that run (train --resume) or choose another output folder.", error.Message);
        FineTuning.CheckOutput(FineTuningConfig.Read(config), resume: true);
    }

    public static TheoryData<string, string> BadInputs => new()
    {
        { "no model", "field 'model': the model folder" },
        { "no tokenizer", "field 'tokenizer': " },
        { "broken tokenizer", "field 'tokenizer': " },
        { "large tokenizer", "field 'tokenizer': sample \"t0\" of " },
        { "no images", "field 'data.images': the image folder " },
        { "missing image", "field 'data.train': " },
        { "undecodable image", "field 'data.train': " },
        { "bad sample", "field 'data.evaluation': " },
        { "no data", "field 'data.train': " },
        { "large batch", "field 'batch_size': is 9, but " },
        { "bad vce", "field 'vce': does not fit the model's vision tower (heads: the width 16 is not divisible by 3 heads.)" },
        { "deep vce", "field 'vce': does not fit the model's vision tower (VCE: levels [-2, -9]" },
        { "bfloat16 on the cpu", "field 'precision': is \"bfloat16\", which this project offers on CUDA devices only" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_reported_before_any_training(string fault, string expected)
    {
        string data = Path.Combine(_run.Root, "data");
        Action<JsonObject>? change = null;
        switch (fault)
        {
            case "no model": change = c => c["model"] = "no-such-model"; break;
            case "no tokenizer": change = c => c["tokenizer"] = "nothing.model"; break;
            case "broken tokenizer": File.WriteAllBytes(Path.Combine(_run.Root, "bad.model"), [1, 2, 3]); change = c => c["tokenizer"] = "bad.model"; break;
            case "large tokenizer":
                // More pieces than the model has embeddings: the data's letters get ids the model does not have.
                TinyRun.WriteTokenizer(Path.Combine(_run.Root, "large.model"), ";()[]{}+-*/=<>ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓ" + TinyRun.Alphabet);
                change = c => c["tokenizer"] = "large.model";
                break;
            case "no images": change = c => c["data"]!["images"] = "data/no-images"; break;
            case "missing image": File.Delete(Path.Combine(data, "images", "coat.png")); break;
            case "undecodable image": File.WriteAllText(Path.Combine(data, "images", "coat.png"), "not a png"); break;
            case "bad sample": File.WriteAllText(Path.Combine(data, "eval.json"), """[{"id": "x", "conversations": [{"from": "robot", "value": "hi"}]}]"""); break;
            case "no data": change = c => c["data"]!["train"] = "data/none.json"; break;
            case "large batch": change = c => c["batch_size"] = 9; break;
            case "bad vce": change = c => c["vce"] = new JsonObject { ["heads"] = 3 }; break;   // 16 channels do not split into 3 heads
            case "bfloat16 on the cpu": change = c => c["precision"] = "bfloat16"; break;
            case "deep vce": change = c => c["vce"] = new JsonObject { ["levels"] = new JsonArray(-2, -9) }; break;   // 3 layers: 4 hidden states
        }
        string config = _run.Config(change);
        var error = Assert.Throws<InvalidFileException>(() => FineTuning.Prepare(FineTuningConfig.Read(config)).Dispose());
        Assert.True(error.Message.StartsWith($"{config}: {expected}", StringComparison.Ordinal), error.Message);
        Assert.False(Directory.Exists(_run.Out()), "nothing is written before the input is checked");
    }
}
