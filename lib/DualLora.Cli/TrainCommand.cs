using System.Globalization;
using DualLora.Pipelines;
using DualLora.Runtime;
using DualLora.Training;
using Spectre.Console;

namespace DualLora.Cli;

/// <summary>
/// <c>train --config FILE [--resume]</c>: the two-stage fine-tuning a config file describes (<see cref="FineTuningConfig"/>).
/// Everything is loaded and checked before the first step; a bad input exits with 2 and its message, a run that fails
/// with 1. Progress shows as a live bar on an interactive console, else as a plain line every few steps.
/// </summary>
static class TrainCommand
{
    public static int Run(Options options, TextWriter output, TextWriter error)
    {
        if (options.Positional.Count > 0) throw new UsageException($"train takes no file arguments (got '{options.Positional[0]}'); use --config FILE.");
        string file = options.Value("--config") ?? throw new UsageException("train needs --config FILE (a JSON fine-tuning config; see the README).");
        bool resume = options.Flag("--resume");
        var config = FineTuningConfig.Read(file);
        FineTuning.CheckOutput(config, resume);
        var device = RuntimeEnvironment.Find().Apply();

        using var run = FineTuning.Prepare(config, device);
        output.WriteLine($"train: {run.TrainingData.Samples.Count:N0} samples from {config.Data.Train}; stage 1 {run.Stage1Steps} steps, stage 2 {run.Stage2Steps} steps, " +
            $"{config.BatchSize * config.GradientAccumulation} samples a step, on {device}; output {config.Output}");
        try
        {
            var result = Interactive(output) ? WithProgressBar(run, resume) : WithLines(run, resume, output);
            output.WriteLine($"final: {result.FinalFolder}");
            if (result.Evaluation is { } evaluation) output.WriteLine(evaluation.ToMarkdown());
            return 0;
        }
        catch (Exception e) when (e is not (OutOfMemoryException or InvalidDataException or DualLora.IO.InvalidFileException))
        {
            error.WriteLine($"error: training failed: {e.Message}");
            error.WriteLine($"the checkpoints written so far are under {config.Output}; continue with train --config {file} --resume");
            return 1;
        }
    }

    static bool Interactive(TextWriter output) =>
        ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    static FineTuningResult WithLines(FineTuning run, bool resume, TextWriter output)
    {
        void Progress(TrainingProgress p)
        {
            int every = Math.Max(1, p.TotalSteps / 20);
            if (p.Step % every == 0 || p.Step == p.TotalSteps) output.WriteLine(Describe(p));
        }
        return run.Run(resume, Progress, output.WriteLine);
    }

    static FineTuningResult WithProgressBar(FineTuning run, bool resume) =>
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn())
            .Start(context =>
            {
                var tasks = new Dictionary<string, ProgressTask>
                {
                    ["stage1"] = context.AddTask("stage1", maxValue: Math.Max(1, run.Stage1Steps)),
                    ["stage2"] = context.AddTask("stage2", maxValue: Math.Max(1, run.Stage2Steps)),
                };
                void Progress(TrainingProgress p)
                {
                    var task = tasks[p.Stage];
                    task.Value = p.Step;
                    task.Description = Markup.Escape(Describe(p));
                }
                void Log(string line)
                {
                    // A skipped or finished stage's bar is full; the line itself goes above the bars.
                    foreach (var (stage, task) in tasks)
                        if (line.StartsWith(stage + ": skipped", StringComparison.Ordinal) || line.StartsWith(stage + ": done", StringComparison.Ordinal))
                            task.Value = task.MaxValue;
                    AnsiConsole.MarkupLine(Markup.Escape(line));
                }
                return run.Run(resume, Progress, Log);
            });

    /// <summary>One step as the plain lines and the bar's label show it.</summary>
    public static string Describe(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"{p.Stage} step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:0.00e+00}  {p.TokensPerSecond:F0} tokens/s  ETA {Clock(p.Remaining)}");

    static string Clock(TimeSpan span) => span.TotalHours >= 1 ? $"{(int)span.TotalHours}:{span:mm\\:ss}" : span.ToString(@"mm\:ss", CultureInfo.InvariantCulture);
}
