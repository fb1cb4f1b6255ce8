using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.IO;

namespace DualLora.Training;

/// <summary>
/// A trainer's <c>metrics.jsonl</c>: one JSON line a step (stage, step, loss, lr, grad_norm, tokens, tokens_per_s,
/// elapsed_s), which a resumed run keeps unbroken. <see cref="ReadLosses"/> and <see cref="ReadElapsed"/> read the loss and the time per step back.
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
    public static IReadOnlyList<(int Step, double Loss)> ReadLosses(string path) =>
        Read(path, "loss", (json, file, number) => (Number<int>(json, "step", file, number), Number<double>(json, "loss", file, number)));

    /// <summary>
    /// The training time up to each step (its "elapsed_s", which counts the time before a restart too), as
    /// <see cref="ReadLosses"/> reads the file.
    /// </summary>
    public static IReadOnlyList<(int Step, double Seconds)> ReadElapsed(string path) =>
        Read(path, "elapsed_s", (json, file, number) => (Number<int>(json, "step", file, number), Number<double>(json, "elapsed_s", file, number)));

    static IReadOnlyList<T> Read<T>(string path, string field, Func<JsonNode?, string, int, T> parse)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"{file}: no such metrics file.", file);
        var values = new List<T>();
        int number = 0;
        foreach (string line in File.ReadLines(file))
        {
            number++;
            if (line.Trim().Length == 0) continue;
            JsonNode? json;
            try { json = JsonNode.Parse(line); }
            catch (JsonException e) { throw new InvalidFileException(file, $"line {number}: not valid JSON ({e.Message}).", e); }
            values.Add(parse(json, file, number));
        }
        if (values.Count == 0) throw new InvalidFileException(file, "no steps recorded.");
        return values;
    }

    static T Number<T>(JsonNode? json, string field, string file, int line) =>
        json?[field] is JsonValue value && value.TryGetValue(out T? number) && number is not null ? number
            : throw new InvalidFileException(file, $"line {line}: field '{field}' is missing or not {(typeof(T) == typeof(int) ? "a whole number" : "a number")}.");
}
