using System.Globalization;
using DualLora.Data;
using DualLora.Multimodal;
using DualLora.Pipelines;
using DualLora.Runtime;

namespace DualLora.Cli;

/// <summary>
/// <c>pretrain</c>: trains the small base model on the generic description task over the scene suite's training scenes
/// (<see cref="Pretraining"/>), prints progress and the accuracy on the validation scenes, and saves the model in the
/// llava-hf layout with the tokenizer beside it.
/// </summary>
static class PretrainCommand
{
    public static int Run(Options options, TextWriter output)
    {
        if (options.Positional.Count > 0) throw new UsageException($"pretrain takes no file arguments (got '{options.Positional[0]}'); use --out DIR.");
        var defaults = new PretrainingOptions();
        var settings = new PretrainingOptions(
            Seed: options.Value("--seed") is { } seed ? Whole("--seed", seed) : defaults.Seed,
            Steps: options.Integer("--steps", defaults.Steps),
            BatchSize: options.Integer("--batch", defaults.BatchSize),
            LearningRate: options.Value("--lr") is { } lr ? LearningRate(lr) : defaults.LearningRate,
            TrainingScenes: options.Integer("--scenes", defaults.TrainingScenes),
            ValidationScenes: options.Integer("--validation", defaults.ValidationScenes))
        { RunFolder = options.Value("--run"), InitialModel = options.Value("--from") };
        int every = options.Integer("--log-every", 10);

        var environment = RuntimeEnvironment.Find();
        environment.Apply();
        string root = Path.GetDirectoryName(environment.SourceFile)!;
        string folder = Path.GetFullPath(options.Value("--out") ?? Path.Combine(root, "out", "pretrained", "small-llava"));
        string tokenizerFolder = Path.Combine(root, "data", "tokenizer");
        var tokenizer = HuggingFaceModels.LoadTokenizer(tokenizerFolder);
        using var source = FashionMnist.Load(environment, FashionMnistSplit.Test);

        output.WriteLine($"pretrain: seed {settings.Seed}, {settings.Steps} steps of {settings.BatchSize}, lr {settings.LearningRate.ToString(CultureInfo.InvariantCulture)}, " +
                         $"{settings.TrainingScenes:N0} training scenes described (\"{SceneDescription.Instruction}\" and \"{string.Format(CultureInfo.InvariantCulture, SceneDescription.CellInstruction, "{position}")}\"), {settings.ValidationScenes} validation scenes, " +
                         $"{TorchSharp.torch.get_num_threads()} threads" + (settings.InitialModel is { } from ? $", continuing from {Path.GetFullPath(from)}" : ""));
        var result = Pretraining.Run(source, tokenizer, settings, p =>
        {
            if (p.Step % every == 0 || p.Step == 1 || p.Step == p.TotalSteps)
                output.WriteLine(FormattableString.Invariant(
                    $"step {p.Step,5}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:E2}  grad norm {p.GradNorm:F2}  {p.TokensPerSecond,7:F0} tokens/s  elapsed {p.Elapsed:hh\\:mm\\:ss}  left {p.Remaining:hh\\:mm\\:ss}"));
        });
        Pretraining.Save(result.Model, tokenizerFolder, folder);

        var scores = result.Validation;
        output.WriteLine();
        output.WriteLine(FormattableString.Invariant($"training time {result.TrainingTime:hh\\:mm\\:ss}, final loss {(result.History.Count > 0 ? result.History[^1].Loss : double.NaN):F4}"));
        output.WriteLine(FormattableString.Invariant(
            $"generic task on {scores.Samples} validation scenes: exact match {100 * scores.ExactMatch:F1}%, field accuracy {100 * scores.FieldAccuracy:F1}%"));
        foreach (var (field, accuracy) in scores.PerField) output.WriteLine(FormattableString.Invariant($"  {field,-16} {100 * accuracy,6:F1}%"));
        output.WriteLine(FormattableString.Invariant(
            $"cell descriptions: exact match {100 * scores.CellExactMatch:F1}%, the item's name right for {100 * scores.CellNameAccuracy:F1}% of the cells holding one"));
        var example = scores.Result.Predictions[0].Prediction;
        output.WriteLine($"example ({example.Id}):\n  reference:  {example.Reference}\n  prediction: {example.Text}");
        output.WriteLine($"saved: {folder} (config.json, model.safetensors, tokenizer.model)");
        return 0;
    }

    static int Whole(string name, string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) ? value
        : throw new UsageException($"{name} must be a whole number from 0 to {int.MaxValue}, got '{text}'.");

    static double LearningRate(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value > 0 && double.IsFinite(value) ? value
        : throw new UsageException($"--lr must be a positive number, got '{text}'.");
}
