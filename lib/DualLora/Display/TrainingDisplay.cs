using System.Globalization;
using System.Net;
using DualLora.Training;

namespace DualLora.Display;

/// <summary>
/// Training progress a person can watch: one compact block (stage, step of steps with a bar, loss, learning
/// rate, tokens per second, elapsed time, time left) that a notebook shows once and updates in place.
/// <code>
/// TrainingDisplay.Show(trainer);   // before trainer.Train(...)
/// </code>
/// <see cref="Formatters.Register"/> makes a <see cref="TrainingProgress"/> look like this block wherever it is shown.
/// </summary>
public static class TrainingDisplay
{
    /// <summary>The shortest time between two updates of a shown display: fast steps would otherwise send thousands.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(0.5);

    const int BarWidth = 240;
    static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>The state before the first step: step 0, nothing measured yet.</summary>
    public static TrainingProgress Waiting(string stage, int totalSteps) =>
        new(stage, 0, totalSteps, double.NaN, double.NaN, double.NaN, 0, 0, TimeSpan.Zero, TimeSpan.Zero);

    /// <summary>
    /// Shows <paramref name="trainer"/>'s progress in one display that each step updates, at most every
    /// <paramref name="interval"/> (default <see cref="DefaultInterval"/>) and always at the last step.
    /// </summary>
    public static LiveDisplay Show<TBatch>(Trainer<TBatch> trainer, TimeSpan? interval = null)
    {
        var shown = LiveDisplay.Show(trainer.History.Count > 0 ? trainer.History[^1] : Waiting(trainer.Stage.Name, trainer.Options.Steps));
        trainer.Progress += Throttled(p => shown.Update(p), interval);
        return shown;
    }

    /// <summary>
    /// Passes a step on to <paramref name="update"/> when it is the first, the last of its stage, or at least
    /// <paramref name="interval"/> of training time (<see cref="TrainingProgress.Elapsed"/>) after the last one passed on.
    /// </summary>
    public static Action<TrainingProgress> Throttled(Action<TrainingProgress> update, TimeSpan? interval = null)
    {
        var every = interval ?? DefaultInterval;
        if (every < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(interval), interval, "The interval between updates cannot be negative.");
        TimeSpan? last = null;
        return progress =>
        {
            if (last is TimeSpan previous && progress.Step < progress.TotalSteps && progress.Elapsed - previous < every) return;
            last = progress.Elapsed;
            update(progress);
        };
    }

    /// <summary>The progress as an HTML block (inline styles only, so it reads the same in every notebook front end).</summary>
    public static string Html(TrainingProgress progress)
    {
        double done = progress.TotalSteps > 0 ? Math.Clamp((double)progress.Step / progress.TotalSteps, 0, 1) : 0;
        string Cell(string label, string value) =>
            $"<span style=\"margin-right:1.2em\"><span style=\"color:#666\">{label}</span> <b>{WebUtility.HtmlEncode(value)}</b></span>";
        return "<div class=\"duallora-training\" style=\"font-family:sans-serif;font-size:13px;line-height:1.6\">" +
            $"<div><b>{WebUtility.HtmlEncode(progress.Stage)}</b> · step {progress.Step} / {progress.TotalSteps} ({(done * 100).ToString("F0", Invariant)}%)</div>" +
            $"<div style=\"width:{BarWidth}px;height:8px;background:#e5e5e5;border-radius:4px\">" +
            $"<div style=\"width:{(done * BarWidth).ToString("F0", Invariant)}px;height:8px;background:{Figure.Palette[0]};border-radius:4px\"></div></div>" +
            "<div>" + string.Concat(Fields(progress).Select(f => Cell(f.Label, f.Value))) + "</div></div>";
    }

    /// <summary>The progress in one line of text.</summary>
    public static string Text(TrainingProgress progress) =>
        $"{progress.Stage} step {progress.Step}/{progress.TotalSteps}: " + string.Join(", ", Fields(progress).Select(f => $"{f.Label} {f.Value}"));

    static IEnumerable<(string Label, string Value)> Fields(TrainingProgress p)
    {
        bool started = p.Step > 0;
        yield return ("loss", started ? p.Loss.ToString("F4", Invariant) : "–");
        yield return ("lr", started ? p.LearningRate.ToString("0.##e+0", Invariant) : "–");
        yield return ("tokens/s", started ? p.TokensPerSecond.ToString("N0", Invariant) : "–");
        yield return ("elapsed", Duration(p.Elapsed));
        yield return ("left", started ? Duration(p.Remaining) : "–");
    }

    /// <summary>A duration as h:mm:ss, or m:ss under an hour.</summary>
    public static string Duration(TimeSpan time)
    {
        long seconds = (long)Math.Round(Math.Max(0, time.TotalSeconds));
        return seconds >= 3600 ? $"{seconds / 3600}:{seconds / 60 % 60:00}:{seconds % 60:00}" : $"{seconds / 60}:{seconds % 60:00}";
    }
}
