using DualLora.Training;

namespace DualLora.Display;

/// <summary>One run's loss per optimizer step, for <c>Charts.TrainingCurves</c>: from a trainer's history or its metrics.jsonl.</summary>
public sealed record TrainingRun(string Name, IReadOnlyList<(int Step, double Loss)> Losses)
{
    /// <summary>The trainer's records (<c>Trainer.History</c>), named <paramref name="name"/> or by their stage.</summary>
    public static TrainingRun From(IReadOnlyList<TrainingProgress> history, string? name = null)
    {
        if (history.Count == 0) throw new ArgumentException($"the run '{name}' has no steps yet.", nameof(history));
        return new(name ?? history[0].Stage, history.Select(p => (p.Step, p.Loss)).ToList());
    }

    /// <summary>
    /// The lines of a trainer's metrics.jsonl (<paramref name="path"/> is the file or the folder that holds it),
    /// named <paramref name="name"/> or by the folder. Each line needs "step" and "loss".
    /// </summary>
    public static TrainingRun FromMetrics(string path, string? name = null)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, TrainingMetrics.FileName) : path;
        return new(name ?? Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(file))) ?? file, TrainingMetrics.ReadLosses(file));
    }
}
