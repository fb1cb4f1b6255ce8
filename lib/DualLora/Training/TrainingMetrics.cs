using System.Text.Json;
using System.Text.Json.Nodes;

namespace DualLora.Training;

/// <summary>
/// A trainer's <c>metrics.jsonl</c>: one JSON line a step (stage, step, loss, lr, grad_norm, tokens, tokens_per_s,
/// elapsed_s), which a resumed run keeps unbroken. <see cref="ReadLosses"/> reads the loss per step back.
/// </summary>
public static class TrainingMetrics
{
    public const string FileName = "metrics.jsonl";

    /// <summary>One step's line.</summary>
    public static string Line(TrainingProgress p) => new JsonObject
    {
        ["stage"] = p.Stage,
        ["step"] = p.Step,
        ["loss"] = p.Loss,
        ["lr"] = p.LearningRate,
        ["grad_norm"] = p.GradNorm,
        ["tokens"] = p.Tokens,
        ["tokens_per_s"] = Math.Round(p.TokensPerSecond, 1),
        ["elapsed_s"] = Math.Round(p.Elapsed.TotalSeconds, 3),
    }.ToJsonString();

    /// <summary>
    /// The step and loss of every line of a metrics file (<paramref name="path"/> is the file or the folder that holds it);
    /// a line that is not JSON or lacks "step" or "loss" is an error naming the file and the line.
    /// </summary>
    public static IReadOnlyList<(int Step, double Loss)> ReadLosses(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
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
        return losses;
    }

    static T Number<T>(JsonNode? json, string field, string file, int line) =>
        json?[field] is JsonValue value && value.TryGetValue(out T? number) && number is not null ? number
            : throw new InvalidDataException($"{file}, line {line}: field '{field}' is missing or not {(typeof(T) == typeof(int) ? "a whole number" : "a number")}.");
}
