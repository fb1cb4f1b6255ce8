using System.Diagnostics;
using DualLora.Data;
using DualLora.Evaluation;
using DualLora.IO;
using DualLora.Multimodal;
using DualLora.Training;
using Microsoft.ML.Tokenizers;
using static TorchSharp.torch;

namespace DualLora.Pipelines;

/// <summary>How the small base is pretrained.</summary>
/// <param name="Seed">Seeds the model's initialisation, the shuffle of the samples and the trainer's generator.</param>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="BatchSize">Samples a step.</param>
/// <param name="LearningRate">The peak learning rate of every parameter (warm-up, then cosine to 0).</param>
/// <param name="TrainingScenes">Training scenes of the suite described (the suite's default is 3,000; more draw further scenes from the same training images).</param>
/// <param name="ValidationScenes">Validation scenes the accuracy is measured on (at most the suite's 500).</param>
/// <param name="SuiteSeed">The scene suite's seed; the default is the suite the fine-tuning tasks use.</param>
public sealed record PretrainingOptions(int Seed = 0, int Steps = 300, int BatchSize = 32, double LearningRate = 1e-3,
    int TrainingScenes = 3000, int ValidationScenes = 500, int SuiteSeed = 0)
{
    public double WarmupRatio { get; init; } = 0.05;
    public double WeightDecay { get; init; }
    /// <summary>Where metrics.jsonl and checkpoints go (a run there resumes from its latest checkpoint); null keeps nothing.</summary>
    public string? RunFolder { get; init; }
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>
    /// A base saved by an earlier pretraining (llava-hf layout) to continue from with a fresh schedule, instead of a
    /// new model from the seed; null starts from scratch.
    /// </summary>
    public string? InitialModel { get; init; }
}

/// <summary>The generic tasks' scores on the validation scenes.</summary>
/// <param name="Samples">The scenes scored (one description and one cell description each).</param>
/// <param name="ExactMatch">The share of descriptions with every field right (<see cref="SceneDescription.FieldNames"/>, in whatever order the cells came).</param>
/// <param name="FieldAccuracy">The share of fields generated exactly, over all descriptions.</param>
/// <param name="PerField">Each field's accuracy, by name.</param>
/// <param name="CellExactMatch">The share of cell descriptions generated exactly (empty cells included).</param>
/// <param name="CellNameAccuracy">Of the cell descriptions asked about a cell holding an item, the share whose first part (the item's name) is right.</param>
/// <param name="Result">The predictions of both tasks, as <see cref="EvaluationResult.Write"/> saves them.</param>
public sealed record DescriptionScores(int Samples, double ExactMatch, double FieldAccuracy, IReadOnlyDictionary<string, double> PerField,
    double CellExactMatch, double CellNameAccuracy, EvaluationResult Result);

/// <summary>What pretraining made: the model, its training record and its accuracy on the generic task.</summary>
public sealed record PretrainingResult(LlavaModel Model, IReadOnlyList<TrainingProgress> History, DescriptionScores Validation, TimeSpan TrainingTime);

/// <summary>
/// Pretrains the project's small LLaVA (<see cref="LlavaConfig.Small"/> without VCE) from scratch on the generic
/// tasks (<see cref="SceneDescription"/>: a description and a cell description of every scene) over the scene suite's training scenes: every parameter trains
/// (<see cref="TrainingStage.Everything"/>), so the vision tower learns to see the items, the projector to pass them on,
/// and the decoder to write every word the suite's answers use. The accuracy is measured by greedy generation on
/// the validation scenes; the evaluation scenes are never read. Fine-tuning then starts from the result with the vision
/// tower and the decoder frozen.
/// <para>
/// Images are rendered in memory (<see cref="FashionScene.Image"/>, the same tensors as the exported PNGs give), once,
/// and samples are batched by the collator in a seeded shuffle (<see cref="ShuffledOrder"/>).
/// </para>
/// </summary>
public static class Pretraining
{
    /// <summary>The model pretraining starts from: the small config without VCE, its vocabulary checked against the tokenizer's.</summary>
    public static LlavaModel NewModel(Tokenizer tokenizer, int seed)
    {
        var config = LlavaConfig.Small(withVce: false);
        int vocabulary = tokenizer is SentencePieceTokenizer sentencePiece ? sentencePiece.Vocabulary.Count : config.Language.VocabSize;
        if (vocabulary > config.Language.VocabSize)
            throw new ArgumentException($"the tokenizer has {vocabulary} pieces, more than the small decoder's vocab_size {config.Language.VocabSize}.");
        manual_seed(seed);
        return new LlavaModel(config);
    }

    public static PretrainingResult Run(FashionMnist source, SentencePieceTokenizer tokenizer, PretrainingOptions options, Action<TrainingProgress>? progress = null)
    {
        var suite = SceneSuite.Build(source, new SceneSuiteOptions(options.SuiteSeed, options.TrainingScenes));
        if (options.ValidationScenes < 1 || options.ValidationScenes > suite.Scenes(SceneSplit.Validation).Count)
            throw new ArgumentOutOfRangeException(nameof(options), options.ValidationScenes, $"validation scenes must be 1 to {suite.Scenes(SceneSplit.Validation).Count}.");
        var model = options.InitialModel is { } initial ? Checked(HuggingFaceModels.LoadLlava(initial), initial) : NewModel(tokenizer, options.Seed);
        var collator = InstructionCollator.For(tokenizer, ImagePreprocessing.ForVisionTower(model.Config.Vision));

        var sceneSamples = SceneDescription.Samples(suite, SceneSplit.Training);
        var samples = sceneSamples.Select(s => s.ToInstructionSample()).ToList();
        using var images = stack(suite.Scenes(SceneSplit.Training).Select(scene => scene.Image(source)).ToArray());
        var order = new ShuffledOrder(samples.Count, options.BatchSize, options.Seed);
        var batches = BatchSource.Of(position =>
        {
            var indices = order.IndicesAt(position);
            return collator.Collate(indices.Select(i => samples[i]).ToList(), indices.Select(i => (Tensor?)images[sceneSamples[i].SceneIndex]).ToList()).Batch;
        });

        var trainerOptions = new TrainerOptions(options.Steps)
        {
            WarmupRatio = options.WarmupRatio,
            Seed = options.Seed,
            OutputFolder = options.RunFolder,
            CheckpointEvery = options.RunFolder is null ? 0 : options.CheckpointEvery,
        };
        var clock = Stopwatch.StartNew();
        using var trainer = new Trainer<MultimodalBatch>(model, TrainingStage.Everything(options.LearningRate, options.WeightDecay), LlavaObjective.For(model), trainerOptions);
        if (progress != null) trainer.Progress += progress;
        if (options.RunFolder != null) trainer.ResumeFromLatest();
        var history = trainer.Train(batches);
        var trainingTime = history.Count > 0 ? history[^1].Elapsed : clock.Elapsed;

        var validation = Evaluate(model, tokenizer, collator, suite, source, SceneSplit.Validation, options.ValidationScenes);
        return new PretrainingResult(model, history, validation, trainingTime);
    }

    /// <summary>
    /// The generic tasks' scores on the first <paramref name="scenes"/> scenes of a split: each description and cell
    /// description generated greedily; descriptions scored field by field (so the cells' order does not count), cell
    /// descriptions by exact match and by the item's name.
    /// </summary>
    public static DescriptionScores Evaluate(LlavaModel model, Tokenizer tokenizer, InstructionCollator collator, SceneSuite suite, FashionMnist source,
        SceneSplit split, int scenes, int batchSize = 50)
    {
        var sceneSamples = SceneDescription.Samples(suite, split).Where(s => s.SceneIndex < scenes).ToList();
        var samples = sceneSamples.Select(s => s.ToInstructionSample()).ToList();
        var sceneOf = suite.Scenes(split);
        int longest = samples.Max(s => collator.Tokenize(s).InputIds.Length - collator.PromptIds(s).Length);
        var evaluator = new GenerationEvaluator(model, tokenizer, collator, new EvaluationOptions(batchSize, MaxNewTokens: longest + 8)
        {
            Kinds = new Dictionary<string, AnswerKind> { [SceneDescription.TaskName] = AnswerKind.Short, [SceneDescription.CellTaskName] = AnswerKind.Short },
        });
        var result = evaluator.Evaluate(samples, sample => sceneOf[SceneIndex(sample)].Image(source));
        var predictions = result.Predictions.Select(p => p.Prediction).ToList();
        var descriptions = predictions.Where((_, i) => sceneSamples[i].Task == SceneDescription.TaskName).ToList();
        var cells = predictions.Where((_, i) => sceneSamples[i].Task == SceneDescription.CellTaskName).ToList();
        var filled = cells.Where(p => p.Reference != SceneDescription.NoItem).ToList();

        // Each description's fields, parsed once: whether the prediction has the reference's value, per field name.
        var fieldsRight = descriptions.Select(p => SceneDescription.FieldsRight(p.Text, p.Reference)).ToList();
        var perField = SceneDescription.FieldNames.Select((name, field) => (name, field))
            .ToDictionary(f => f.name, f => fieldsRight.Average(right => right[f.field] ? 1.0 : 0.0));
        string FirstPart(string text) => text.Split(',')[0].Trim();
        return new DescriptionScores(descriptions.Count,
            fieldsRight.Average(right => right.All(r => r) ? 1.0 : 0.0),
            fieldsRight.Average(right => right.Average(r => r ? 1.0 : 0.0)), perField,
            cells.Average(p => p.Text.Trim() == p.Reference ? 1.0 : 0.0),
            filled.Count == 0 ? double.NaN : filled.Average(p => FirstPart(p.Text) == FirstPart(p.Reference) ? 1.0 : 0.0),
            result);
    }

    /// <summary>
    /// Writes the model in the llava-hf layout (<see cref="LlavaHfWriter"/>, float32) with the tokenizer beside it, so
    /// <c>HuggingFaceModels.LoadLlava(folder)</c> and <c>HuggingFaceModels.LoadTokenizer(folder)</c> read it back.
    /// </summary>
    public static void Save(LlavaModel model, string tokenizerFolder, string folder)
    {
        LlavaHfWriter.Save(model, folder, ScalarType.Float32);
        string tokenizer = Path.Combine(Path.GetFullPath(tokenizerFolder), "tokenizer.model");
        if (!File.Exists(tokenizer)) throw new FileNotFoundException($"{tokenizer}: no tokenizer.model to put beside the model.");
        IO.AtomicFile.WriteAllBytes(Path.Combine(Path.GetFullPath(folder), "tokenizer.model"), File.ReadAllBytes(tokenizer));
    }

    /// <summary>A model to continue from must be the small one without VCE, the model this pipeline trains.</summary>
    static LlavaModel Checked(LlavaModel model, string folder)
    {
        var small = LlavaConfig.Small(withVce: false);
        if (model.Config.Vision != small.Vision || model.Config.Language != small.Language)
            throw new InvalidFileException(Path.Combine(Path.GetFullPath(folder), LlavaHfWriter.ConfigFile), $"not the small model's sizes (LlavaConfig.Small); pretraining continues only the small base.");
        return model;
    }

    // The scene of a generic sample: its id is {split}-{scene:D5}-{task}.
    static int SceneIndex(InstructionSample sample) => int.Parse(sample.Id.Split('-')[1], System.Globalization.CultureInfo.InvariantCulture);
}
