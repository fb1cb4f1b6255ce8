using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.IO;
using DualLora.Runtime;

namespace DualLora.Pipelines;

/// <summary>What a run of the comparison is for.</summary>
public enum ComparisonPhase
{
    /// <summary>Choosing a method's learning rate: one seed, the selection budget, scored on the validation split.</summary>
    Selection,
    /// <summary>The comparison itself: every method at every matched budget, every seed, scored on the evaluation split.</summary>
    Evaluation,
    /// <summary>Every method at one equal rank (a mixture's experts sharing it), without VCE, scored on the evaluation split.</summary>
    EqualRank,
    /// <summary>The paper's ablation: Dual-LoRA without its LayerNorm, its ReLU or both, at the selection rank, without VCE.</summary>
    Ablation,
}

/// <summary>
/// A comparison of adapters on the scene suite (METHOD.md §2 and §4), fixed before any run: which methods, with and
/// without VCE, at which budgets, over which seeds, with which learning-rate grid, and how long each stage trains.
/// <para>
/// Budgets are the trainable parameters of a Dual-LoRA of each rank in <see cref="BudgetRanks"/> on the model's default
/// targets; every other method is brought to each budget by <see cref="Adapters.ParameterBudget.Match"/> (within 2%).
/// A method's adapter learning rate is chosen per VCE setting at <see cref="SelectionRank"/>'s budget with the first seed,
/// by exact match on the first <see cref="ValidationScenes"/> validation scenes; the evaluation split is never used to choose.
/// Stage 1 (the connector alone) does not involve the adapter, so it is trained once per VCE setting and seed and every
/// stage-2 run of that setting and seed starts from it.
/// </para>
/// </summary>
/// <param name="Methods">Adapter methods (<see cref="AdapterSettings.Methods"/>); LoRA must be one (the differences are taken against it).</param>
/// <param name="Vce">The VCE settings compared: false (LLaVA's projector), true (VCE with its defaults), or both.</param>
/// <param name="BudgetRanks">Dual-LoRA ranks whose parameter counts are the matched budgets.</param>
/// <param name="EqualRank">Every method at this rank too (a mixture: its experts' ranks add up to it), without VCE; null skips it.</param>
/// <param name="Ablation">Whether to run Dual-LoRA without LayerNorm, without ReLU and without both (at <see cref="SelectionRank"/>, without VCE).</param>
/// <param name="Seeds">Seeds (stage 1's VCE initialisation, the data order, the adapter's initialisation, dropout).</param>
/// <param name="LearningRates">The adapter learning rates each method chooses from; the connector trains at a tenth of it in stage 2, as in METHOD.md §4.</param>
/// <param name="SelectionRank">The Dual-LoRA rank whose budget the learning rates are chosen at (one of <see cref="BudgetRanks"/>).</param>
/// <param name="Stage1Steps">Steps of stage 1 (the connector alone, at <see cref="Stage1LearningRate"/>).</param>
/// <param name="Stage2Steps">Steps of stage 2 (adapter and connector).</param>
/// <param name="BatchSize">Samples a step.</param>
/// <param name="ValidationScenes">Validation scenes (7 samples each) the learning rates are chosen on.</param>
/// <param name="EvaluationScenes">Evaluation scenes (7 samples each) the methods are scored on.</param>
public sealed record ComparisonPlan(
    IReadOnlyList<string> Methods,
    IReadOnlyList<bool> Vce,
    IReadOnlyList<int> BudgetRanks,
    int? EqualRank,
    bool Ablation,
    IReadOnlyList<long> Seeds,
    IReadOnlyList<double> LearningRates,
    int SelectionRank,
    int Stage1Steps,
    int Stage2Steps,
    int BatchSize,
    int ValidationScenes,
    int EvaluationScenes)
{
    public const string Lora = "lora", DualLora = "dual_lora";

    /// <summary>The ablation's variants: name, LayerNorm, ReLU.</summary>
    public static readonly IReadOnlyList<(string Name, bool LayerNorm, bool Relu)> AblationVariants =
        [("dual_lora_no_ln", false, true), ("dual_lora_no_relu", true, false), ("dual_lora_neither", false, false)];

    public double Stage1LearningRate { get; init; } = 1e-3;
    /// <summary>Stage 2's connector learning rate as a share of the adapter's (METHOD.md §4: 2e-5 against 2e-4).</summary>
    public double ConnectorShare { get; init; } = 0.1;
    public int MaxLength { get; init; } = 128;
    public int Experts { get; init; } = 4;
    public int EvaluationBatchSize { get; init; } = 64;
    /// <summary>The longest answer generated; the suite's longest (four items listed) is 15 tokens.</summary>
    public int MaxNewTokens { get; init; } = 24;
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Training scenes of the suite when the comparison exports it itself (7 samples each; the suite's default is 3,000).</summary>
    public int TrainingScenes { get; init; } = 3000;

    /// <summary>
    /// The smoke profile (CI, under 3 minutes): every method with and without VCE at one tiny budget, one seed, two
    /// learning rates, a few steps, and the ablation; its numbers show that the machinery works, nothing about the methods.
    /// </summary>
    public static ComparisonPlan Smoke => new([.. AdapterSettings.Methods.Where(m => m != DualLora).Prepend(DualLora)], [false, true], [4], EqualRank: 4,
        Ablation: true, Seeds: [0], LearningRates: [1e-3, 1e-2], SelectionRank: 4, Stage1Steps: 3, Stage2Steps: 4, BatchSize: 4,
        ValidationScenes: 2, EvaluationScenes: 2) { CheckpointEvery = 2, EvaluationBatchSize = 16, TrainingScenes = 8 };

    /// <summary>
    /// The full profile, whose results are committed: five methods with and without VCE at the budgets of Dual-LoRA
    /// r = 4, 16 and 32, three seeds, learning rates {1e-3, 3e-3, 1e-2}, the equal-rank runs at r = 16 and the ablation.
    /// </summary>
    public static ComparisonPlan Full => new([.. AdapterSettings.Methods.Where(m => m != DualLora).Prepend(DualLora)], [false, true], [4, 16, 32], EqualRank: 16,
        Ablation: true, Seeds: [0, 1, 2], LearningRates: [1e-3, 3e-3, 1e-2], SelectionRank: 16, Stage1Steps: 100, Stage2Steps: 300, BatchSize: 16,
        ValidationScenes: 100, EvaluationScenes: 300);

    public static ComparisonPlan For(Profile profile) => profile == Profile.Smoke ? Smoke : Full;

    /// <summary>Throws <see cref="ArgumentException"/> naming the field at fault.</summary>
    public void Validate()
    {
        static void Require(bool condition, string field, string fault)
        {
            if (!condition) throw new ArgumentException($"comparison plan: {field} {fault}");
        }
        Require(Methods.Count > 0 && Methods.Distinct().Count() == Methods.Count, "methods", "must name each method once.");
        foreach (var method in Methods) Require(AdapterSettings.Methods.Contains(method), "methods", $"holds \"{method}\", not one of {string.Join(", ", AdapterSettings.Methods)}.");
        Require(Methods.Contains(Lora), "methods", "must hold lora: every method is compared with it.");
        Require(Vce.Count is 1 or 2 && Vce.Distinct().Count() == Vce.Count, "vce", "must be [false], [true] or [false, true].");
        Require(BudgetRanks.Count > 0 && BudgetRanks.All(r => r >= 1) && BudgetRanks.Distinct().Count() == BudgetRanks.Count, "budget ranks", "must be distinct ranks of at least 1.");
        Require(BudgetRanks.Contains(SelectionRank), "selection rank", $"is {SelectionRank}, not one of the budget ranks [{string.Join(", ", BudgetRanks)}].");
        Require(EqualRank is null or >= 1, "equal rank", "must be at least 1.");
        Require(EqualRank is null || EqualRank >= Experts, "equal rank", $"must be at least the number of experts ({Experts}), one rank each.");
        Require(Seeds.Count > 0 && Seeds.Distinct().Count() == Seeds.Count && Seeds.All(s => s >= 0), "seeds", "must be distinct seeds of 0 or more.");
        Require(LearningRates.Count > 0 && LearningRates.All(r => r is > 0 and <= 1) && LearningRates.Distinct().Count() == LearningRates.Count, "learning rates", "must be distinct rates in (0, 1].");
        Require(Stage1Steps >= 0 && Stage2Steps >= 1 && BatchSize >= 1, "steps", "must be 0 or more for stage 1, at least 1 for stage 2, and the batch at least 1.");
        Require(ValidationScenes >= 1 && EvaluationScenes >= 1 && TrainingScenes >= 1, "scenes", "must be at least 1 for training, validation and evaluation.");
    }

    /// <summary>The runs that do not depend on a learning-rate choice: every method's candidates at the selection budget, one seed.</summary>
    public IReadOnlyList<ComparisonRunSpec> SelectionRuns() =>
    [
        .. from vce in Vce from method in Methods from rate in LearningRates
           select new ComparisonRunSpec(ComparisonPhase.Selection, method, vce, SelectionRank, rate, Seeds[0]),
        .. from variant in Ablation ? AblationVariants : [] from rate in LearningRates
           select new ComparisonRunSpec(ComparisonPhase.Selection, variant.Name, false, SelectionRank, rate, Seeds[0]),
    ];

    /// <summary>The runs scored on the evaluation split, each method at the learning rate <paramref name="chosen"/> gives for it and its VCE setting.</summary>
    public IReadOnlyList<ComparisonRunSpec> EvaluationRuns(Func<string, bool, double> chosen) =>
    [
        .. from rank in BudgetRanks from vce in Vce from method in Methods from seed in Seeds
           select new ComparisonRunSpec(ComparisonPhase.Evaluation, method, vce, rank, chosen(method, vce), seed),
        .. from method in EqualRank is null ? [] : Methods.Where(m => m != DualLora || !BudgetRanks.Contains(EqualRank.Value) || !Vce.Contains(false))
           from seed in Seeds
           select new ComparisonRunSpec(ComparisonPhase.EqualRank, method, false, EqualRank!.Value, chosen(method, false), seed),
        .. from variant in Ablation ? AblationVariants : [] from seed in Seeds
           select new ComparisonRunSpec(ComparisonPhase.Ablation, variant.Name, false, SelectionRank, chosen(variant.Name, false), seed),
    ];

    public JsonObject ToJson() => new()
    {
        ["methods"] = new JsonArray(Methods.Select(m => (JsonNode)JsonValue.Create(m)).ToArray()),
        ["vce"] = new JsonArray(Vce.Select(v => (JsonNode)JsonValue.Create(v)).ToArray()),
        ["budget_ranks"] = new JsonArray(BudgetRanks.Select(r => (JsonNode)JsonValue.Create(r)).ToArray()),
        ["equal_rank"] = EqualRank,
        ["ablation"] = Ablation,
        ["seeds"] = new JsonArray(Seeds.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
        ["learning_rates"] = new JsonArray(LearningRates.Select(r => (JsonNode)JsonValue.Create(r)).ToArray()),
        ["selection_rank"] = SelectionRank,
        ["stage1_steps"] = Stage1Steps,
        ["stage2_steps"] = Stage2Steps,
        ["batch_size"] = BatchSize,
        ["validation_scenes"] = ValidationScenes,
        ["evaluation_scenes"] = EvaluationScenes,
        ["stage1_learning_rate"] = Stage1LearningRate,
        ["connector_share"] = ConnectorShare,
        ["max_length"] = MaxLength,
        ["experts"] = Experts,
        ["evaluation_batch_size"] = EvaluationBatchSize,
        ["max_new_tokens"] = MaxNewTokens,
        ["checkpoint_every"] = CheckpointEvery,
        ["training_scenes"] = TrainingScenes,
    };

    /// <summary>Reads a plan a comparison wrote (<c>plan.json</c>); every field is checked, errors name the file and field.</summary>
    public static ComparisonPlan Read(string file)
    {
        var json = JsonObjectReader.ReadFile(file);
        try
        {
            var plan = new ComparisonPlan(json.StringList("methods"), json.BoolList("vce"), json.OptionalIntList("budget_ranks", 1) ?? throw json.FieldError("budget_ranks", "is missing."),
                json.Kind("equal_rank") == JsonValueKind.Null ? null : json.Int("equal_rank", 1), json.Bool("ablation"),
                json.LongList("seeds", 0), json.DoubleList("learning_rates"), json.Int("selection_rank", 1),
                json.Int("stage1_steps", 0), json.Int("stage2_steps", 1), json.Int("batch_size", 1), json.Int("validation_scenes", 1), json.Int("evaluation_scenes", 1))
            {
                Stage1LearningRate = json.Double("stage1_learning_rate"),
                ConnectorShare = json.Double("connector_share"),
                MaxLength = json.Int("max_length", 2),
                Experts = json.Int("experts", 1),
                EvaluationBatchSize = json.Int("evaluation_batch_size", 1),
                MaxNewTokens = json.Int("max_new_tokens", 1),
                CheckpointEvery = json.Int("checkpoint_every", 0),
                TrainingScenes = json.Int("training_scenes", 1),
            };
            json.RejectUnknownFields();
            plan.Validate();
            return plan;
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(file, e.Message, e);
        }
    }

    /// <summary>Where two plans differ, one line a field; empty when they are the same plan.</summary>
    public IReadOnlyList<string> Differences(ComparisonPlan other)
    {
        var mine = ToJson();
        var theirs = other.ToJson();
        return mine.Select(p => p.Key)
            .Where(key => !JsonNode.DeepEquals(mine[key], theirs[key]))
            .Select(key => $"{key}: {mine[key]?.ToJsonString() ?? "null"} here, {theirs[key]?.ToJsonString() ?? "null"} there")
            .ToList();
    }
}

/// <summary>One run of a comparison: a method (or an ablation variant), with or without VCE, at the budget of a Dual-LoRA rank, one learning rate, one seed.</summary>
public sealed record ComparisonRunSpec(ComparisonPhase Phase, string Method, bool Vce, int Rank, double LearningRate, long Seed)
{
    /// <summary>The run's name, as its record file and folder are called: <c>evaluation-moe_top_k-vce-r16-lr0.003-seed1</c>.</summary>
    public string Id => string.Create(CultureInfo.InvariantCulture,
        $"{PhaseName(Phase)}-{Method}-{(Vce ? "vce" : "novce")}-r{Rank}-lr{LearningRate:0.######}-seed{Seed}");

    public static string PhaseName(ComparisonPhase phase) => phase switch
    {
        ComparisonPhase.Selection => "selection",
        ComparisonPhase.Evaluation => "evaluation",
        ComparisonPhase.EqualRank => "equal_rank",
        _ => "ablation",
    };
}
