using System.Text.Json;
using System.Text.Json.Nodes;
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
        string file = Directory.Exists(path) ? Path.Combine(path, "metrics.jsonl") : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"{file}: no such metrics file.", file);
        var losses = new List<(int, double)>();
        int number = 0;
        foreach (string line in File.ReadLines(file))
        {
            number++;
            if (line.Trim().Length == 0) continue;
            JsonNode? json;
            try { json = JsonNode.Parse(line); }
            catch (JsonException e) { throw new InvalidDataException($"{file}, line {number}: not valid JSON ({e.Message}).", e); }
            losses.Add((Number<int>(json, "step", file, number), Number<double>(json, "loss", file, number)));
        }
        if (losses.Count == 0) throw new InvalidDataException($"{file}: no steps recorded.");
        return new(name ?? Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(file))) ?? file, losses);
    }

    static T Number<T>(JsonNode? json, string field, string file, int line) =>
        json?[field] is JsonValue value && value.TryGetValue(out T? number) && number is not null ? number
            : throw new InvalidDataException($"{file}, line {line}: field '{field}' is missing or not {(typeof(T) == typeof(int) ? "a whole number" : "a number")}.");
}
