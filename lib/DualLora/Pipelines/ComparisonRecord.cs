using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.IO;

namespace DualLora.Pipelines;

/// <summary>
/// What one run of a comparison measured, as its record file (<c>runs/ID.json</c> in the report folder) keeps it: the run,
/// its adapter's size, its stage-2 loss curve, its scores per task and overall on the split it was scored on, and its times.
/// A record is written once the run has finished, so a comparison that is started again skips the runs that have one.
/// </summary>
/// <param name="Run">The run: phase, method, VCE, rank, learning rate, seed.</param>
/// <param name="Budget">The matched budget: the trainable parameters of a Dual-LoRA of <see cref="ComparisonRunSpec.Rank"/> (for equal-rank runs, the run's own count).</param>
/// <param name="AdapterParameters">The adapter's trainable parameters (the connector's are the same for every method and not counted).</param>
/// <param name="Ranks">The adapter's ranks in words ("r=6 (q_proj of layers 0-1: 7)", "4 experts x r=2").</param>
/// <param name="LossCurve">Stage 2's loss, averaged over windows of steps: (last step of the window, mean loss).</param>
/// <param name="FinalLoss">The mean loss over the last tenth of stage 2's steps.</param>
/// <param name="Split">"validation" or "evaluation".</param>
/// <param name="Samples">The samples scored.</param>
/// <param name="ExactMatch">Exact match per task and <c>overall</c>, in [0, 1].</param>
/// <param name="ListF1">The multiset F1 of the list tasks, in [0, 1].</param>
/// <param name="TrainSeconds">Stage 2's training time.</param>
/// <param name="Seconds">The whole run's wall time: loading, training, writing and generating.</param>
public sealed record ComparisonRecord(ComparisonRunSpec Run, long Budget, long AdapterParameters, string Ranks,
    IReadOnlyList<(int Step, double Loss)> LossCurve, double FinalLoss, string Split, int Samples,
    IReadOnlyDictionary<string, double> ExactMatch, IReadOnlyDictionary<string, double> ListF1, double TrainSeconds, double Seconds)
{
    public const string Overall = "overall";

    public double OverallExactMatch => ExactMatch[Overall];

    public JsonObject ToJson() => new()
    {
        ["id"] = Run.Id,
        ["phase"] = ComparisonRunSpec.PhaseName(Run.Phase),
        ["method"] = Run.Method,
        ["vce"] = Run.Vce,
        ["rank"] = Run.Rank,
        ["learning_rate"] = Run.LearningRate,
        ["seed"] = Run.Seed,
        ["budget"] = Budget,
        ["adapter_parameters"] = AdapterParameters,
        ["ranks"] = Ranks,
        ["final_loss"] = FinalLoss,
        ["loss_curve_steps"] = new JsonArray(LossCurve.Select(p => (JsonNode)JsonValue.Create(p.Step)).ToArray()),
        ["loss_curve"] = new JsonArray(LossCurve.Select(p => (JsonNode)JsonValue.Create(p.Loss)).ToArray()),
        ["split"] = Split,
        ["samples"] = Samples,
        ["exact_match"] = new JsonObject(ExactMatch.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
        ["list_f1"] = new JsonObject(ListF1.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
        ["train_seconds"] = TrainSeconds,
        ["seconds"] = Seconds,
    };

    public void Write(string file) =>
        AtomicFile.WriteAllText(file, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    static readonly Dictionary<string, ComparisonPhase> Phases = Enum.GetValues<ComparisonPhase>().ToDictionary(ComparisonRunSpec.PhaseName);

    /// <summary>Reads a record file; a missing or mistyped field is an error naming the file and the field.</summary>
    public static ComparisonRecord Read(string file)
    {
        var json = JsonObjectReader.ReadFile(file);
        var run = new ComparisonRunSpec(json.Choice("phase", Phases), json.String("method"), json.Bool("vce"), json.Int("rank", 1),
            json.Double("learning_rate"), json.Long("seed", 0));
        string id = json.String("id");
        if (id != run.Id) throw json.FieldError("id", $"is \"{id}\", but the record's fields make \"{run.Id}\".");
        var steps = json.OptionalIntList("loss_curve_steps", 1) ?? throw json.FieldError("loss_curve_steps", "is missing.");
        var losses = json.DoubleList("loss_curve");
        if (steps.Count != losses.Count) throw json.FieldError("loss_curve", $"holds {losses.Count} losses for {steps.Count} steps.");
        var curve = steps.Zip(losses).ToList();
        static IReadOnlyDictionary<string, double> Scores(JsonObjectReader scores) => scores.Names.ToList().ToDictionary(name => name, name => scores.Double(name));
        var record = new ComparisonRecord(run, json.Long("budget", 0), json.Long("adapter_parameters", 0), json.String("ranks"), curve,
            json.Double("final_loss"), json.Choice("split", "validation", "evaluation"), json.Int("samples", 1),
            Scores(json.Object("exact_match")), Scores(json.Object("list_f1")), json.Double("train_seconds"), json.Double("seconds"));
        if (!record.ExactMatch.ContainsKey(Overall)) throw json.FieldError("exact_match", $"has no \"{Overall}\" score.");
        json.RejectUnknownFields();
        return record;
    }
}
