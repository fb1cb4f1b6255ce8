using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.IO;
using static TorchSharp.torch;

namespace DualLora.Training;

/// <summary>
/// A stage's checkpoint: a folder <c>checkpoints/step-NNNNNN</c> holding everything an exact resume needs.
/// <list type="bullet">
/// <item><c>trainer_state.json</c>: stage, step and total steps (the schedule's position), data position,
/// seed, the data (what the batches are), elapsed time, what trains (names and shapes), the adapter's config, the optimizer's step counts.</item>
/// <item><c>adapter/</c>: the adapter in HF PEFT's layout (when the stage has adapters).</item>
/// <item><c>trainable.safetensors</c>: the other trainable weights (the connector), by name in the model.</item>
/// <item><c>optimizer.safetensors</c>: AdamW's moments by parameter name.</item>
/// <item><c>rng_state.safetensors</c>: the CPU random generator's state (dropout).</item>
/// </list>
/// The folder is written under a temporary name and renamed when complete, so a process killed while
/// writing leaves the previous checkpoint as the latest.
/// </summary>
public static class TrainingCheckpoint
{
    public const string StateFile = "trainer_state.json", TrainableFile = "trainable.safetensors", OptimizerFile = "optimizer.safetensors",
        RandomStateFile = "rng_state.safetensors", AdapterFolder = "adapter", Folder = "checkpoints";
    const string Format = "duallora-trainer-state", TemporaryPrefix = ".incomplete-";

    /// <summary>What a checkpoint says about its run, and what a run must match to resume from it.</summary>
    public sealed record State(string Stage, int Step, int TotalSteps, long DataPosition, int GradientAccumulation, long Seed, string Data, double ElapsedSeconds,
        JsonObject? Adapter, IReadOnlyDictionary<string, long[]> Trainable, long ModelParameters, IReadOnlyDictionary<string, long> OptimizerSteps);

    /// <summary>The folder of step <paramref name="step"/> under <paramref name="outputFolder"/>.</summary>
    public static string PathOf(string outputFolder, int step) => Path.Combine(outputFolder, Folder, $"step-{step.ToString("D6", CultureInfo.InvariantCulture)}");

    /// <summary>Complete checkpoints under <paramref name="outputFolder"/>, oldest first.</summary>
    public static IReadOnlyList<string> List(string outputFolder)
    {
        string folder = Path.Combine(outputFolder, Folder);
        if (!Directory.Exists(folder)) return [];
        return Directory.GetDirectories(folder, "step-*").Where(d => File.Exists(Path.Combine(d, StateFile)))
            .OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal).ToList();
    }

    public static string? Latest(string outputFolder) => List(outputFolder).LastOrDefault();

    internal static string Save(string outputFolder, State state, IEnumerable<(string Name, Tensor Tensor)> trainableWeights, AdapterHandle? adapters,
        AdamWOptimizer optimizer, int keep)
    {
        string final = PathOf(outputFolder, state.Step);
        string parent = Path.GetDirectoryName(final)!;
        Directory.CreateDirectory(parent);
        foreach (var stale in Directory.GetDirectories(parent, TemporaryPrefix + "*")) Directory.Delete(stale, recursive: true);
        string temporary = Path.Combine(parent, TemporaryPrefix + Path.GetFileName(final));
        Directory.CreateDirectory(temporary);

        if (adapters != null) AdapterFiles.Save(adapters, Path.Combine(temporary, AdapterFolder));
        SafetensorsWriter.Write(Path.Combine(temporary, TrainableFile), trainableWeights.Select(w => KeyValuePair.Create(w.Name, w.Tensor)).ToList());
        SafetensorsWriter.Write(Path.Combine(temporary, OptimizerFile), optimizer.StateTensors().ToList());
        using (var random = TorchSharp.torch.random.get_rng_state())
            SafetensorsWriter.Write(Path.Combine(temporary, RandomStateFile), [KeyValuePair.Create("cpu", random)]);
        AtomicFile.WriteAllText(Path.Combine(temporary, StateFile), StateJson(state).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(temporary, final);
        foreach (var old in List(outputFolder).SkipLast(keep)) Directory.Delete(old, recursive: true);
        return final;
    }

    public static State ReadState(string checkpoint)
    {
        string path = Path.Combine(checkpoint, StateFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{checkpoint}: not a checkpoint ({StateFile} is missing).");
        var json = JsonObjectReader.ReadFile(path);
        if (json.String("format") != Format) throw json.FieldError("format", $"is not \"{Format}\".");
        var trainable = json.Object("trainable");
        var steps = json.Object("optimizer_steps");
        return new State(json.String("stage"), json.Int("step", 0), json.Int("total_steps", 1), json.Long("data_position", 0),
            json.Int("gradient_accumulation", 1), json.Long("seed"), json.String("data"), json.Double("elapsed_seconds"),
            json.OptionalObject("adapter")?.Copy(),
            trainable.Names.ToDictionary(n => n, n => (trainable.OptionalIntList(n, 0) ?? throw trainable.FieldError(n, "must be a list of sizes.")).Select(i => (long)i).ToArray(), StringComparer.Ordinal),
            json.Long("model_parameters", 0),
            steps.Names.ToDictionary(n => n, n => steps.Long(n, 1), StringComparer.Ordinal));
    }

    /// <summary>Every way in which <paramref name="saved"/> does not fit the run described by <paramref name="current"/> (empty when it fits).</summary>
    public static IReadOnlyList<string> Differences(State saved, State current)
    {
        var faults = new List<string>();
        void Compare<T>(string what, T inFile, T inRun)
        {
            if (!EqualityComparer<T>.Default.Equals(inFile, inRun)) faults.Add($"{what}: {inFile} in the checkpoint, {inRun} in this run");
        }
        Compare("stage", saved.Stage, current.Stage);
        Compare("total steps", saved.TotalSteps, current.TotalSteps);
        Compare("gradient accumulation", saved.GradientAccumulation, current.GradientAccumulation);
        Compare("seed", saved.Seed, current.Seed);
        Compare("data", $"\"{saved.Data}\"", $"\"{current.Data}\"");
        Compare("parameters in the model", saved.ModelParameters, current.ModelParameters);
        if (saved.Adapter is null || current.Adapter is null)
            Compare("adapter", saved.Adapter?["peft_type"]?.ToJsonString() ?? "none", current.Adapter?["peft_type"]?.ToJsonString() ?? "none");
        else
            foreach (string field in saved.Adapter.Select(f => f.Key).Union(current.Adapter.Select(f => f.Key)))
                Compare($"adapter {field}", saved.Adapter[field]?.ToJsonString() ?? "absent", current.Adapter[field]?.ToJsonString() ?? "absent");
        foreach (var (name, shape) in saved.Trainable)
        {
            if (!current.Trainable.TryGetValue(name, out var mine)) faults.Add($"'{name}' trains in the checkpoint, not in this run");
            else if (!shape.SequenceEqual(mine)) faults.Add($"'{name}' is [{string.Join(", ", shape)}] in the checkpoint, [{string.Join(", ", mine)}] in this run");
        }
        foreach (var name in current.Trainable.Keys.Where(n => !saved.Trainable.ContainsKey(n)))
            faults.Add($"'{name}' trains in this run, not in the checkpoint");
        return faults;
    }

    static JsonObject StateJson(State state) => new()
    {
        ["format"] = Format,
        ["stage"] = state.Stage,
        ["step"] = state.Step,
        ["total_steps"] = state.TotalSteps,
        ["data_position"] = state.DataPosition,
        ["gradient_accumulation"] = state.GradientAccumulation,
        ["seed"] = state.Seed,
        ["data"] = state.Data,
        ["elapsed_seconds"] = state.ElapsedSeconds,
        ["model_parameters"] = state.ModelParameters,
        ["adapter"] = state.Adapter?.DeepClone(),
        ["trainable"] = new JsonObject(state.Trainable.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)new JsonArray(t.Value.Select(s => (JsonNode)JsonValue.Create(s)).ToArray())))),
        ["optimizer_steps"] = new JsonObject(state.OptimizerSteps.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => KeyValuePair.Create(s.Key, (JsonNode?)JsonValue.Create(s.Value)))),
    };
}
