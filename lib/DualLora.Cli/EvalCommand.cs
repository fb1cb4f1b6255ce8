using DualLora.Data;
using DualLora.Evaluation;
using DualLora.IO;
using DualLora.Pipelines;
using DualLora.Runtime;

namespace DualLora.Cli;

/// <summary>
/// <c>eval</c>: generation-based evaluation of a trained run (<c>--run</c>: its final folder, which names the base model,
/// VCE and tokenizer and holds the connector and the adapter) or of a base llava-hf model as it is (<c>--model</c>), on a
/// LLaVA JSON file; writes predictions.jsonl and metrics.json and prints the per-task table.
/// </summary>
static class EvalCommand
{
    public static int Run(Options options, TextWriter output)
    {
        if (options.Positional.Count > 0) throw new UsageException($"eval takes no file arguments (got '{options.Positional[0]}'); use --data FILE.");
        string? runFolder = options.Value("--run"), modelFolder = options.Value("--model");
        if ((runFolder is null) == (modelFolder is null)) throw new UsageException("eval needs either --run DIR (a training run) or --model DIR (a base model), not both.");
        if (runFolder is not null && options.Value("--tokenizer") is not null) throw new UsageException("--tokenizer goes with --model; a run names its own tokenizer.");
        string data = options.Value("--data") ?? throw new UsageException("eval needs --data FILE (LLaVA JSON).");
        string outFolder = options.Value("--out") ?? throw new UsageException("eval needs --out DIR.");
        if (!File.Exists(data)) throw new FileNotFoundException($"{Path.GetFullPath(data)}: no such data file (--data).");
        if (modelFolder is not null && !Directory.Exists(modelFolder)) throw new FileNotFoundException($"{Path.GetFullPath(modelFolder)}: no such model folder (--model).");
        if (runFolder is not null && !Directory.Exists(runFolder)) throw new FileNotFoundException($"{Path.GetFullPath(runFolder)}: no such run folder (--run).");
        var defaults = new EvaluationOptions();
        var evaluation = new EvaluationOptions(options.Integer("--batch", defaults.BatchSize), options.Integer("--max-new-tokens", defaults.MaxNewTokens));

        LlavaInstructionData samples;
        try
        {
            samples = LlavaInstructionData.Load(data, options.Value("--images"));
        }
        catch (DirectoryNotFoundException e)   // the image folder: bad input, exit code 2 as a bad file is
        {
            throw new InvalidDataException(e.Message, e);
        }
        if (samples.Samples.Count == 0) throw new InvalidFileException(Path.GetFullPath(data), "no samples to evaluate.");

        var device = RuntimeEnvironment.Find().Apply();
        using var model = runFolder is not null ? FineTunedModel.FromRun(runFolder, device) : FineTunedModel.Base(modelFolder!, options.Value("--tokenizer"), device);
        var result = model.Evaluate(samples, evaluation, outFolder);
        output.WriteLine($"eval: {result.Overall.Count} samples of {data}{(model.Adapters is null ? "" : $", adapter {model.Adapters.Config.PeftType}")}");
        output.WriteLine(result.ToMarkdown());
        output.WriteLine($"written: {Path.Combine(Path.GetFullPath(outFolder), EvaluationResult.PredictionsFile)}, {Path.Combine(Path.GetFullPath(outFolder), EvaluationResult.MetricsFile)}");
        return 0;
    }
}
