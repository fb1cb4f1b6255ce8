using DualLora.Adapters;
using DualLora.Data;
using DualLora.Evaluation;
using DualLora.IO;
using DualLora.Multimodal;
using DualLora.Training;
using DualLora.Vision;
using Microsoft.ML.Tokenizers;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Pipelines;

/// <summary>What a run left: the final folder, its files, each stage's steps and the evaluation (when there was evaluation data).</summary>
public sealed record FineTuningResult(string FinalFolder, string? AdapterFolder, string ConnectorFile,
    IReadOnlyList<TrainingProgress> Stage1, IReadOnlyList<TrainingProgress> Stage2, EvaluationResult? Evaluation);

/// <summary>
/// The two-stage recipe of METHOD.md §4 on a LLaVA model and LLaVA-format data, as a <see cref="FineTuningConfig"/>
/// describes it. <see cref="Prepare"/> loads and checks everything first (the model with VCE, the tokenizer, every
/// sample, every image's header, the stages' lengths), so bad input stops the run before any training.
/// <see cref="Run"/> then trains stage 1 (the connector) into <c>OUT/stage1</c>, injects the adapter, trains stage 2
/// (adapter and connector) into <c>OUT/stage2</c>, writes <c>OUT/final</c> (the adapter in PEFT's layout, the connector's
/// weights and the config with absolute paths) and, with evaluation data, <c>OUT/eval</c>. Resumed, each stage continues
/// from its newest checkpoint; a finished stage only reloads its last weights.
/// </summary>
public sealed class FineTuning : IDisposable
{
    public const string Stage1Folder = "stage1", Stage2Folder = "stage2", FinalFolder = "final", EvaluationFolder = "eval",
        ConnectorFile = "connector.safetensors", ConfigFile = "finetune_config.json";

    public FineTuningConfig Config { get; }
    public LlavaModel Model { get; }
    public LlamaTokenizer Tokenizer { get; }
    public InstructionCollator Collator { get; }
    public LlavaInstructionData TrainingData { get; }
    public LlavaInstructionData? EvaluationData { get; }
    /// <summary>The adapter stage 2 trains; null until it is injected (and when stage 2 is skipped).</summary>
    public AdapterHandle? Adapters { get; private set; }
    public int Stage1Steps { get; }
    public int Stage2Steps { get; }

    FineTuning(FineTuningConfig config, LlavaModel model, LlamaTokenizer tokenizer, InstructionCollator collator,
        LlavaInstructionData training, LlavaInstructionData? evaluation, int stage1Steps, int stage2Steps)
    {
        Config = config;
        Model = model;
        Tokenizer = tokenizer;
        Collator = collator;
        TrainingData = training;
        EvaluationData = evaluation;
        Stage1Steps = stage1Steps;
        Stage2Steps = stage2Steps;
    }

    /// <summary>
    /// Refuses to start a fresh run into an output folder that already holds something: it would mix two runs.
    /// (Resuming where nothing was written starts from the beginning.)
    /// </summary>
    public static void CheckOutput(FineTuningConfig config, bool resume)
    {
        if (!resume && Directory.Exists(config.Output) && Directory.EnumerateFileSystemEntries(config.Output).Any())
            throw new InvalidFileException(config.File ?? "the fine-tuning config", $"field 'output': {config.Output} is not empty; resume that run (train --resume) or choose another output folder.");
    }

    /// <summary>
    /// Loads the model (VCE freshly initialised from the seed), the tokenizer and the data, and checks that they fit
    /// together; every fault is an <see cref="InvalidFileException"/> naming the config file and its field.
    /// </summary>
    /// <param name="config">The run.</param>
    /// <param name="device">Where the model trains (the environment's device); the CPU by default.</param>
    public static FineTuning Prepare(FineTuningConfig config, Device? device = null)
    {
        string file = config.File ?? "the fine-tuning config";
        InvalidFileException Fault(string field, string fault, Exception? inner = null) => new(file, $"field '{field}': {fault}", inner);
        T Checked<T>(string field, Func<T> load)
        {
            try { return load(); }
            catch (Exception e) when (IsInputFault(e))
            {
                throw Fault(field, e.Message, e);
            }
        }

        if (!Directory.Exists(config.Model)) throw Fault("model", $"the model folder {config.Model} does not exist.");
        if (!File.Exists(config.Tokenizer)) throw Fault("tokenizer", $"{config.Tokenizer} does not exist (a SentencePiece tokenizer.model).");
        if (!File.Exists(config.Data.Train)) throw Fault("data.train", $"{config.Data.Train} does not exist.");
        if (!Directory.Exists(config.Data.Images)) throw Fault("data.images", $"the image folder {config.Data.Images} does not exist.");
        if (config.Data.Evaluation is { } evaluationFile && !File.Exists(evaluationFile)) throw Fault("data.evaluation", $"{evaluationFile} does not exist.");
        if (config.Connector is { } connectorFile && !File.Exists(connectorFile)) throw Fault("connector", $"{connectorFile} does not exist.");
        Checked("adapter", () => { config.Adapter.ToConfig().Validate(); return true; });
        if (config.Precision == TrainingPrecision.BFloat16 && (device is null || device.type == DeviceType.CPU))
            throw Fault("precision", "is \"bfloat16\", which this project offers on CUDA devices only (environment.json: \"backend\": \"cuda\"); on the CPU training runs in \"float32\".");

        var training = Checked("data.train", () => LlavaInstructionData.Load(config.Data.Train, config.Data.Images));
        var evaluation = config.Data.Evaluation is { } evaluationPath ? Checked("data.evaluation", () => LlavaInstructionData.Load(evaluationPath, config.Data.Images)) : null;
        if (training.Samples.Count < config.BatchSize)
            throw Fault("batch_size", $"is {config.BatchSize}, but {config.Data.Train} has {training.Samples.Count} samples: not one full batch.");
        if (evaluation is { Samples.Count: 0 }) throw Fault("data.evaluation", $"{evaluation.File} holds no samples.");
        int stage1Steps = config.Stage1.Length.StepsFor(training.Samples.Count, config.BatchSize, config.GradientAccumulation);
        int stage2Steps = config.Stage2.Length.StepsFor(training.Samples.Count, config.BatchSize, config.GradientAccumulation);

        var tokenizer = Checked("tokenizer", () => HuggingFaceModels.LoadTokenizerFile(config.Tokenizer));
        manual_seed(config.Seed);   // VCE's initial weights
        LlavaModel model;
        try
        {
            model = HuggingFaceModels.LoadLlava(config.Model, config.Vce);
        }
        catch (ArgumentException e) when (e.TargetSite?.DeclaringType is { } thrower && (thrower == typeof(VisionConnector) || thrower == typeof(VisualCueEnhancement)))
        {
            throw Fault("vce", $"does not fit the model's vision tower ({e.Message})", e);
        }
        catch (Exception e) when (IsInputFault(e))
        {
            throw Fault("model", e.Message, e);
        }
        try
        {
            if (config.Connector is { } connectorWeights)
                Checked("connector", () => { LoadConnector(model, connectorWeights); return true; });
            var collator = Checked("model", () => InstructionCollator.For(tokenizer, ImagePreprocessing.ForVisionTower(model.Config.Vision), config.MaxLength));
            CheckTokens(training, collator, model.Config.Language.VocabSize, file);
            if (evaluation != null) CheckTokens(evaluation, collator, model.Config.Language.VocabSize, file);
            CheckImages(training, "data.train", file);
            if (evaluation != null) CheckImages(evaluation, "data.evaluation", file);
            if (device is not null && device.type != DeviceType.CPU) model.to(device);
            if (config.Precision == TrainingPrecision.BFloat16) model.to(ScalarType.BFloat16);
            return new FineTuning(config, model, tokenizer, collator, training, evaluation, stage1Steps, stage2Steps);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Loads a connector's weights (keys <c>connector.*</c>, every key and shape checked) into <paramref name="model"/>.</summary>
    public static void LoadConnector(LlavaModel model, string file)
    {
        using var connector = SafetensorsCheckpoint.Open(file);
        StrictWeights.Load(model.connector.named_parameters().Select(p => ("connector." + p.name, (Tensor)p.parameter)), connector, key => key);
    }

    // What a file that is missing, unreadable or does not fit raises while it loads (not a bug or an out-of-memory).
    static bool IsInputFault(Exception e) =>
        e is IOException or InvalidDataException or ArgumentException or InvalidOperationException or UnauthorizedAccessException;

    // Every id the model will see must have an embedding: a tokenizer larger than the model's vocabulary cannot encode for it.
    static void CheckTokens(LlavaInstructionData data, InstructionCollator collator, long vocabulary, string file)
    {
        foreach (var sample in data.Samples)
        {
            var (ids, _) = collator.Tokenize(sample);
            long largest = ids.Max();
            if (largest >= vocabulary)
                throw new InvalidFileException(file, $"field 'tokenizer': sample \"{sample.Id}\" of {data.File} encodes to id {largest}, " +
                    $"but the model's vocabulary has {vocabulary} ids (0 to {vocabulary - 1}): the tokenizer does not belong to this model.");
        }
    }

    // Only the headers: a file that is not an image stops the run now rather than at the batch that holds it.
    static void CheckImages(LlavaInstructionData data, string field, string file)
    {
        foreach (var path in data.Samples.Where(s => s.HasImage).Select(s => s.ImagePath!).Distinct())
        {
            using var codec = SKCodec.Create(path, out var result);
            if (codec is null)
                throw new InvalidFileException(file, $"field '{field}': {data.File} names {path}, which is not a decodable image ({result}).");
        }
    }

    /// <summary>
    /// Runs both stages, writes the final folder and evaluates. Each step's record goes to <paramref name="progress"/>,
    /// each milestone (a stage starting, resuming or skipped, the files written) to <paramref name="log"/>.
    /// </summary>
    public FineTuningResult Run(bool resume, Action<TrainingProgress>? progress = null, Action<string>? log = null, CancellationToken cancellation = default)
    {
        CheckOutput(Config, resume);
        Directory.CreateDirectory(Config.Output);
        // The tower stays frozen through both stages and the evaluation, so each image's features are computed once.
        using var towerCache = Config.TowerCacheMegabytes > 0 ? new TowerFeatureCache(Config.TowerCacheMegabytes * 1048576L) : null;
        Model.TowerCache = towerCache;
        try
        {
            return RunStages(resume, progress, log, cancellation);
        }
        finally
        {
            Model.TowerCache = null;
            if (towerCache != null)
                log?.Invoke($"tower features: {towerCache.Images:N0} images cached ({towerCache.Bytes / 1048576.0:F1} MB), " +
                            $"{towerCache.Hits:N0} of {towerCache.Hits + towerCache.Misses:N0} lookups reused");
        }
    }

    FineTuningResult RunStages(bool resume, Action<TrainingProgress>? progress, Action<string>? log, CancellationToken cancellation)
    {
        var stage1 = TrainStage(Stage1Folder, Stage1Steps, TrainingStage.ConnectorOnly(Config.Stage1.LearningRate, Config.WeightDecay), null,
            Config.Seed, resume, progress, log, cancellation);

        IReadOnlyList<TrainingProgress> stage2 = [];
        if (Stage2Steps > 0)
        {
            manual_seed(Config.Seed + 1);   // the adapter's initial weights, whatever stage 1 drew
            Adapters = AdapterInjection.Inject(Model, Config.Adapter.ToConfig());
            log?.Invoke($"adapter: {Config.Adapter.Method}, {Adapters.Layers.Count} layers; {Adapters.Count()}");
            stage2 = TrainStage(Stage2Folder, Stage2Steps, TrainingStage.AdaptersAndConnector(Adapters, Config.Stage2.AdapterLearningRate, Config.Stage2.ConnectorLearningRate, Config.WeightDecay),
                Adapters, Config.Seed + 1, resume, progress, log, cancellation);
        }
        else log?.Invoke("stage2: skipped (0 steps)");

        string final = WriteFinal();
        log?.Invoke($"final: {final}");
        EvaluationResult? evaluation = null;
        if (EvaluationData != null)
        {
            var settings = Config.EvaluationOrDefault;
            // Said before it starts: generation takes minutes on a CPU and shows no progress of its own.
            log?.Invoke($"evaluation: generating answers for {EvaluationData.Samples.Count:N0} samples of {EvaluationData.File}");
            evaluation = new GenerationEvaluator(Model, Tokenizer, Collator, new EvaluationOptions(settings.BatchSize, settings.MaxNewTokens)).Evaluate(EvaluationData);
            string folder = Path.Combine(Config.Output, EvaluationFolder);
            evaluation.Write(folder);
            log?.Invoke($"evaluation: {folder} (exact match {(100 * evaluation.Overall.ExactMatch).ToString("F1", System.Globalization.CultureInfo.InvariantCulture)}% over {evaluation.Overall.Count} samples)");
        }
        return new FineTuningResult(final, Adapters is null ? null : Path.Combine(final, TrainingCheckpoint.AdapterFolder), Path.Combine(final, ConnectorFile),
            stage1, stage2, evaluation);
    }

    IReadOnlyList<TrainingProgress> TrainStage(string name, int steps, TrainingStage stage, AdapterHandle? adapters, long seed, bool resume,
        Action<TrainingProgress>? progress, Action<string>? log, CancellationToken cancellation)
    {
        if (steps == 0)
        {
            log?.Invoke($"{name}: skipped (0 steps)");
            return [];
        }
        string folder = Path.Combine(Config.Output, name);
        var options = new TrainerOptions(steps)
        {
            GradientAccumulation = Config.GradientAccumulation,
            Schedule = Config.Schedule,
            WarmupRatio = Config.WarmupRatio,
            MaxGradNorm = Config.MaxGradNorm,
            Seed = seed,
            OutputFolder = folder,
            CheckpointEvery = Config.CheckpointEvery,
            Data = $"{Config.Data.Train} ({TrainingData.Samples.Count} samples), batch size {Config.BatchSize}, max length {Config.MaxLength}",
        };
        using var trainer = new Trainer<MultimodalBatch>(Model, stage, LlavaObjective.For(Model, adapters), options, adapters);
        if (progress != null) trainer.Progress += progress;
        if (resume && trainer.ResumeFromLatest() is { } checkpoint)
            log?.Invoke(trainer.Step == steps ? $"{name}: done, its weights loaded from {checkpoint}" : $"{name}: resuming from {checkpoint} (step {trainer.Step} of {steps})");
        else
        {
            // A run stopped before its first checkpoint starts over; the lines it logged go with it.
            if (Directory.Exists(folder)) File.Delete(Path.Combine(folder, "metrics.jsonl"));
            log?.Invoke($"{name}: {steps} steps of {Config.BatchSize * Config.GradientAccumulation} samples");
        }
        var batches = InstructionBatches.Shuffled(TrainingData, TrainingData.Samples, Collator, Config.BatchSize, seed);
        return trainer.Train(batches, cancellation);
    }

    /// <summary>Writes OUT/final under a temporary name and renames it when complete, so a half-written final folder never stands.</summary>
    string WriteFinal()
    {
        string final = Path.Combine(Config.Output, FinalFolder), temporary = Path.Combine(Config.Output, ".incomplete-" + FinalFolder);
        if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
        Directory.CreateDirectory(temporary);
        if (Adapters != null) AdapterFiles.Save(Adapters, Path.Combine(temporary, TrainingCheckpoint.AdapterFolder));
        SafetensorsWriter.Write(Path.Combine(temporary, ConnectorFile),
            Model.connector.named_parameters().Select(p => KeyValuePair.Create("connector." + p.name, (Tensor)p.parameter)).ToList());
        Config.Write(Path.Combine(temporary, ConfigFile));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(temporary, final);
        return final;
    }

    public void Dispose() => Model.Dispose();
}
