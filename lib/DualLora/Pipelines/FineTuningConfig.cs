using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.IO;
using DualLora.Training;
using DualLora.Vision;

namespace DualLora.Pipelines;

/// <summary>The data of a run: the LLaVA JSON to train on, the folder its image paths resolve against, and optional evaluation data (same image folder).</summary>
public sealed record DataFiles(string Train, string Images, string? Evaluation = null);

/// <summary>How long a stage runs: a number of optimizer steps, or of epochs over the training data (0 skips the stage).</summary>
public sealed record StageLength(int? Steps, double? Epochs)
{
    /// <summary>0 steps or 0 epochs: the stage is skipped.</summary>
    public bool IsZero => Steps == 0 || Epochs == 0;

    /// <summary>The stage's optimizer steps: the steps given, or ⌈epochs · (samples / batch, rounded down) / accumulation⌉.</summary>
    public int StepsFor(int samples, int batchSize, int gradientAccumulation) =>
        Steps ?? (int)Math.Ceiling(Epochs!.Value * (samples / batchSize) / gradientAccumulation);
}

/// <summary>Stage 1 (METHOD.md §4): the connector alone.</summary>
public sealed record Stage1Settings(StageLength Length, double LearningRate = 1e-3);

/// <summary>Stage 2 (METHOD.md §4): the adapter and the connector, each at its own learning rate.</summary>
public sealed record Stage2Settings(StageLength Length, double AdapterLearningRate = 2e-4, double ConnectorLearningRate = 2e-5);

/// <summary>
/// The adapter stage 2 injects. <see cref="Rank"/> is the adapter's rank (for a mixture: each expert's rank);
/// <see cref="Experts"/>, <see cref="TopK"/> and <see cref="AuxiliaryLossWeight"/> apply to the mixtures only,
/// <see cref="UseLayerNorm"/> and <see cref="UseRelu"/> (the paper's ablation switches) to Dual-LoRA only.
/// <see cref="RankPattern"/> is PEFT's <c>rank_pattern</c>: module path (or its last segments) → that layer's rank
/// (for a mixture: the layer's total rank, spread over its experts), and <see cref="ExpertRanks"/> a mixture's rank per
/// expert where they differ, as <see cref="ParameterBudget.Match"/> makes them.
/// </summary>
public sealed record AdapterSettings(string Method, int Rank, double Alpha, double Dropout, int Experts = 4, int TopK = 2, double AuxiliaryLossWeight = 0,
    IReadOnlyDictionary<string, int>? RankPattern = null, bool UseLayerNorm = true, bool UseRelu = true, IReadOnlyList<int>? ExpertRanks = null)
{
    public static readonly IReadOnlyList<string> Methods = ["dual_lora", "lora", "moe_dense", "moe_top_k", "moe_rectified"];

    /// <summary>The defaults of a method: METHOD.md §4's r 32, α 64, dropout 0.05 for Dual-LoRA and LoRA; four experts of rank 8 and α 16 for a mixture.</summary>
    public static AdapterSettings Default(string method) => method.StartsWith("moe_", StringComparison.Ordinal)
        ? new(method, 8, 16, 0.05)
        : new(method, 32, 64, 0.05);

    /// <summary>The adapter config; its targets are left to the model's default (LLaVA: the decoder's q and v projections).</summary>
    public AdapterConfig ToConfig()
    {
        var pattern = RankPattern ?? new Dictionary<string, int>();
        return Method switch
        {
            "dual_lora" => new DualLoraConfig(Rank, Alpha, Dropout, UseLayerNorm, UseRelu) { RankPattern = pattern },
            "lora" => new LoraConfig(Rank, Alpha, Dropout) { RankPattern = pattern },
            "moe_dense" => new MoeLoraConfig(Routing.Dense, Experts, Rank, Alpha, TopK, Dropout, AuxiliaryLossWeight, ExpertRanks) { RankPattern = pattern },
            "moe_top_k" => new MoeLoraConfig(Routing.TopK, Experts, Rank, Alpha, TopK, Dropout, AuxiliaryLossWeight, ExpertRanks) { RankPattern = pattern },
            "moe_rectified" => new MoeLoraConfig(Routing.Rectified, Experts, Rank, Alpha, TopK, Dropout, AuxiliaryLossWeight, ExpertRanks) { RankPattern = pattern },
            _ => throw new ArgumentException($"adapter method \"{Method}\" is not one of {string.Join(", ", Methods)}."),
        };
    }

    /// <summary>
    /// The settings of an adapter config this pipeline can build (anything but rsLoRA), so a config made in code, such as
    /// a budget-matched one, can be written to a run's file.
    /// </summary>
    public static AdapterSettings From(AdapterConfig config) => config switch
    {
        LoraConfig { UseRsLora: false } lora => new("lora", lora.Rank, lora.Alpha, lora.Dropout, RankPattern: Copy(lora.RankPattern)),
        DualLoraConfig dual => new("dual_lora", dual.Rank, dual.EffectiveAlpha, dual.Dropout, RankPattern: Copy(dual.RankPattern),
            UseLayerNorm: dual.UseLayerNorm, UseRelu: dual.UseRelu),
        MoeLoraConfig moe => new(moe.Routing switch { Routing.Dense => "moe_dense", Routing.TopK => "moe_top_k", _ => "moe_rectified" },
            moe.ExpertRank, moe.Alpha, moe.Dropout, moe.Experts, moe.TopK, moe.AuxiliaryLossWeight, Copy(moe.RankPattern), ExpertRanks: moe.ExpertRanks),
        _ => throw new ArgumentException($"{config}: a fine-tuning config cannot express rsLoRA."),
    };

    static IReadOnlyDictionary<string, int>? Copy(IReadOnlyDictionary<string, int> pattern) =>
        pattern.Count == 0 ? null : new SortedDictionary<string, int>(pattern.ToDictionary(), StringComparer.Ordinal);
}

/// <summary>The type of the model's weights and activations while it trains and is evaluated.</summary>
public enum TrainingPrecision
{
    /// <summary>float32 throughout: the default, and the only choice on a CPU.</summary>
    Float32,
    /// <summary>bfloat16 weights, activations and AdamW moments (the whole model converted, no float32 master copy): half the memory; CUDA only.</summary>
    BFloat16,
}

/// <summary>How the evaluation after training generates.</summary>
public sealed record EvaluationSettings(int BatchSize = 16, int MaxNewTokens = 64);

/// <summary>
/// A fine-tuning run as a JSON file describes it (<see cref="Read"/>): the model (a llava-hf folder), its tokenizer,
/// VCE, the data, the adapter, the two stages and the trainer's settings, and where outputs go. Relative paths
/// resolve against the config file's folder; every field is checked for its type and range, and unknown fields
/// are refused, each error naming the file and the field. Defaults follow METHOD.md §4.
/// </summary>
public sealed record FineTuningConfig(
    string Model,
    string Tokenizer,
    VceConfig? Vce,
    DataFiles Data,
    AdapterSettings Adapter,
    Stage1Settings Stage1,
    Stage2Settings Stage2,
    string Output,
    int BatchSize = 8,
    int GradientAccumulation = 1,
    double WarmupRatio = 0.03,
    double MaxGradNorm = 1.0,
    double WeightDecay = 0,
    ScheduleKind Schedule = ScheduleKind.Cosine,
    int MaxLength = 2048,
    long Seed = 0,
    int CheckpointEvery = 50,
    EvaluationSettings? Evaluation = null,
    TrainingPrecision Precision = TrainingPrecision.Float32)
{
    /// <summary>The file the config was read from, as errors name it (null for a config built in code).</summary>
    public string? File { get; init; }

    /// <summary>
    /// A connector's weights to start from (a <c>connector.safetensors</c> of an earlier run's final folder, keys <c>connector.*</c>,
    /// of the same VCE settings), instead of the model's projector and a freshly initialised VCE: so several runs can share
    /// one stage 1 (give it with stage 1 at 0 steps). Null: start from the model.
    /// </summary>
    public string? Connector { get; init; }

    /// <summary>
    /// How many MB of the frozen vision tower's features the run may keep, so an image seen again skips the tower
    /// (<see cref="Multimodal.TowerFeatureCache"/>; the small model's images take about 0.1 MB each with VCE); 0 turns it off.
    /// </summary>
    public int TowerCacheMegabytes { get; init; } = 1024;

    public EvaluationSettings EvaluationOrDefault => Evaluation ?? new EvaluationSettings();

    static readonly Dictionary<string, TrainingPrecision> Precisions = new() { ["float32"] = TrainingPrecision.Float32, ["bfloat16"] = TrainingPrecision.BFloat16 };
    static readonly Dictionary<string, ScheduleKind> Schedules = new() { ["cosine"] = ScheduleKind.Cosine, ["constant"] = ScheduleKind.Constant };

    /// <summary>Reads and checks a config file (the files it names are checked by <see cref="FineTuning.Prepare"/>).</summary>
    public static FineTuningConfig Read(string file)
    {
        file = Path.GetFullPath(file);
        if (!System.IO.File.Exists(file)) throw new FileNotFoundException($"{file}: no such config file.");
        var json = JsonObjectReader.ReadFile(file);
        string folder = Path.GetDirectoryName(file)!;
        string Resolve(string path) => Path.GetFullPath(path, folder);

        string model = Resolve(json.String("model"));
        string tokenizer = json.OptionalString("tokenizer") is { } t ? Resolve(t) : Path.Combine(model, "tokenizer.model");
        var vce = ReadVce(json);

        var data = json.Object("data");
        var dataFiles = new DataFiles(Resolve(data.String("train")), Resolve(data.String("images")),
            data.OptionalString("evaluation") is { } evaluation ? Resolve(evaluation) : null);
        data.RejectUnknownFields();

        var adapter = ReadAdapter(json.OptionalObject("adapter"));
        var stages = json.OptionalObject("stages");
        var stage1Json = stages?.OptionalObject("stage1");
        var stage2Json = stages?.OptionalObject("stage2");
        var stage1 = new Stage1Settings(ReadLength(stage1Json), LearningRate(stage1Json, "learning_rate", 1e-3));
        var stage2 = new Stage2Settings(ReadLength(stage2Json),
            LearningRate(stage2Json, "adapter_learning_rate", 2e-4), LearningRate(stage2Json, "connector_learning_rate", 2e-5));
        stage1Json?.RejectUnknownFields();
        stage2Json?.RejectUnknownFields();
        stages?.RejectUnknownFields();

        var evaluationJson = json.OptionalObject("evaluation");
        var evaluationSettings = new EvaluationSettings(evaluationJson?.OptionalInt("batch_size", 1) ?? 16, evaluationJson?.OptionalInt("max_new_tokens", 1) ?? 64);
        evaluationJson?.RejectUnknownFields();

        var config = new FineTuningConfig(model, tokenizer, vce, dataFiles, adapter, stage1, stage2, Resolve(json.String("output")),
            json.OptionalInt("batch_size", 1) ?? 8,
            json.OptionalInt("gradient_accumulation", 1) ?? 1,
            Ranged(json, "warmup_ratio", 0.03, r => r is >= 0 and <= 1, "in [0, 1]"),
            Ranged(json, "max_grad_norm", 1.0, n => n >= 0, "0 (no clipping) or more"),
            Ranged(json, "weight_decay", 0, d => d >= 0, "0 or more"),
            json.OptionalChoice("schedule", Schedules) ?? ScheduleKind.Cosine,
            json.OptionalInt("max_length", 2) ?? 2048,
            json.OptionalLong("seed") ?? 0,
            json.OptionalInt("checkpoint_every", 0) ?? 50,
            evaluationSettings,
            json.OptionalChoice("precision", Precisions) ?? TrainingPrecision.Float32)
        {
            File = file,
            Connector = json.OptionalString("connector") is { } connector ? Resolve(connector) : null,
            TowerCacheMegabytes = json.OptionalInt("tower_cache_mb", 0) ?? 1024,
        };
        json.RejectUnknownFields();
        if (config.Stage1.Length.IsZero && config.Stage2.Length.IsZero)
            throw json.FieldError("stages", "trains nothing: both stages have 0 steps or epochs.");
        return config;
    }

    static VceConfig? ReadVce(JsonObjectReader json)
    {
        switch (json.Kind("vce"))
        {
            case JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.True: return new VceConfig();
            case JsonValueKind.False: return null;
            case JsonValueKind.Object:
                var vce = json.Object("vce");
                var defaults = new VceConfig();
                var config = new VceConfig(vce.OptionalIntList("levels", int.MinValue, -1), vce.OptionalInt("anchor_level", int.MinValue, -1) ?? defaults.AnchorLevel,
                    vce.OptionalInt("heads", 1) ?? defaults.Heads, vce.OptionalInt("points", 1) ?? defaults.Points, vce.OptionalBool("output_norm") ?? defaults.OutputNorm);
                vce.RejectUnknownFields();
                if (config.Levels is { Count: 0 }) throw vce.FieldError("levels", "is empty; give at least one level, or leave it out for four evenly spaced ones.");
                if (config.Levels is { } levels && !levels.Contains(config.AnchorLevel))
                    throw vce.FieldError("anchor_level", $"is {config.AnchorLevel}, which is not one of the levels [{string.Join(", ", levels)}].");
                return config;
            default:
                throw json.FieldError("vce", "must be true, false, or an object of VCE settings (levels, anchor_level, heads, points, output_norm).");
        }
    }

    static AdapterSettings ReadAdapter(JsonObjectReader? json)
    {
        if (json is null) return AdapterSettings.Default("dual_lora");
        string method = json.OptionalString("method") is null ? "dual_lora" : json.Choice("method", AdapterSettings.Methods.ToArray());
        var defaults = AdapterSettings.Default(method);
        bool mixture = method.StartsWith("moe_", StringComparison.Ordinal);
        var settings = new AdapterSettings(method,
            json.OptionalInt("rank", 1) ?? defaults.Rank,
            Ranged(json, "alpha", defaults.Alpha, a => a > 0, "more than 0"),
            Ranged(json, "dropout", defaults.Dropout, d => d is >= 0 and < 1, "in [0, 1)"),
            json.OptionalInt("experts", 1) ?? defaults.Experts,
            json.OptionalInt("top_k", 1) ?? defaults.TopK,
            Ranged(json, "aux_loss_weight", defaults.AuxiliaryLossWeight, w => w >= 0, "0 or more"),
            ReadRankPattern(json),
            json.OptionalBool("layer_norm") ?? true,
            json.OptionalBool("relu") ?? true,
            json.OptionalIntList("expert_ranks", 1));
        foreach (var field in new[] { "experts", "top_k", "aux_loss_weight", "expert_ranks" })
            if (!mixture && json.Kind(field) is not (JsonValueKind.Undefined or JsonValueKind.Null))
                throw json.FieldError(field, $"applies to the mixtures (moe_dense, moe_top_k, moe_rectified), not to \"{method}\".");
        foreach (var field in new[] { "layer_norm", "relu" })
            if (method != "dual_lora" && json.Kind(field) is not (JsonValueKind.Undefined or JsonValueKind.Null))
                throw json.FieldError(field, $"applies to dual_lora (the ablation's switches), not to \"{method}\".");
        if (settings.ExpertRanks is { } ranks && ranks.Count != settings.Experts)
            throw json.FieldError("expert_ranks", $"holds {ranks.Count} ranks for {settings.Experts} experts; give one rank per expert.");
        if (mixture && settings.RankPattern is { } pattern && pattern.FirstOrDefault(p => p.Value < settings.Experts) is { Key: not null } small)
            throw json.FieldError($"rank_pattern.{small.Key}", $"is {small.Value}; a mixture's layer needs a total rank of at least {settings.Experts} (one per expert).");
        if (method == "moe_top_k" && settings.TopK > settings.Experts)
            throw json.FieldError("top_k", $"is {settings.TopK}; it must be at most the number of experts ({settings.Experts}).");
        if (method == "moe_dense" && settings.AuxiliaryLossWeight > 0)
            throw json.FieldError("aux_loss_weight", "must be 0 for dense routing (top-k has load balancing, rectified has L1).");
        json.RejectUnknownFields();
        return settings;
    }

    static IReadOnlyDictionary<string, int>? ReadRankPattern(JsonObjectReader adapter)
    {
        if (adapter.OptionalObject("rank_pattern") is not { } json) return null;
        var pattern = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (string name in json.Names.ToList()) pattern[name] = json.Int(name, 1);
        return pattern;
    }

    static StageLength ReadLength(JsonObjectReader? stage)
    {
        if (stage is null) return new StageLength(null, 1);
        int? steps = stage.OptionalInt("steps", 0);
        double? epochs = stage.OptionalDouble("epochs");
        if (epochs is < 0) throw stage.FieldError("epochs", $"is {epochs}; it must be 0 (skip the stage) or more.");
        if (steps is not null && epochs is not null) throw stage.FieldError("steps", "and 'epochs' are both given; give one of them.");
        return steps is null && epochs is null ? new StageLength(null, 1) : new StageLength(steps, epochs);
    }

    static double LearningRate(JsonObjectReader? stage, string field, double fallback) =>
        stage is null ? fallback : Ranged(stage, field, fallback, rate => rate is > 0 and <= 1, "in (0, 1]");

    /// <summary>An optional number that must pass <paramref name="allowed"/>, which <paramref name="range"/> says in words.</summary>
    static double Ranged(JsonObjectReader json, string field, double fallback, Func<double, bool> allowed, string range) =>
        json.OptionalDouble(field) is not { } value ? fallback
        : allowed(value) ? value
        : throw json.FieldError(field, $"is {value.ToString(System.Globalization.CultureInfo.InvariantCulture)}; it must be {range}.");

    /// <summary>The config as a JSON file reads it, every path absolute: the copy a run's final folder keeps, from which <c>eval</c> rebuilds the model.</summary>
    public JsonObject ToJson()
    {
        static JsonNode Length(StageLength l) => l.Steps is { } s ? new JsonObject { ["steps"] = s } : new JsonObject { ["epochs"] = l.Epochs };
        var stage1 = Length(Stage1.Length).AsObject();
        stage1["learning_rate"] = Stage1.LearningRate;
        var stage2 = Length(Stage2.Length).AsObject();
        stage2["adapter_learning_rate"] = Stage2.AdapterLearningRate;
        stage2["connector_learning_rate"] = Stage2.ConnectorLearningRate;
        var adapter = new JsonObject { ["method"] = Adapter.Method, ["rank"] = Adapter.Rank, ["alpha"] = Adapter.Alpha, ["dropout"] = Adapter.Dropout };
        if (Adapter.Method.StartsWith("moe_", StringComparison.Ordinal))
        {
            adapter["experts"] = Adapter.Experts;
            adapter["top_k"] = Adapter.TopK;
            adapter["aux_loss_weight"] = Adapter.AuxiliaryLossWeight;
            if (Adapter.ExpertRanks is { } ranks) adapter["expert_ranks"] = new JsonArray(ranks.Select(r => (JsonNode)JsonValue.Create(r)).ToArray());
        }
        if (Adapter.Method == "dual_lora")
        {
            adapter["layer_norm"] = Adapter.UseLayerNorm;
            adapter["relu"] = Adapter.UseRelu;
        }
        if (Adapter.RankPattern is { Count: > 0 } pattern)
            adapter["rank_pattern"] = new JsonObject(pattern.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value))));
        var data = new JsonObject { ["train"] = Data.Train, ["images"] = Data.Images };
        if (Data.Evaluation is { } evaluation) data["evaluation"] = evaluation;
        var json = new JsonObject
        {
            ["model"] = Model,
            ["tokenizer"] = Tokenizer,
            ["vce"] = Vce is null ? false : new JsonObject
            {
                ["levels"] = Vce.Levels is null ? null : new JsonArray(Vce.Levels.Select(l => (JsonNode)JsonValue.Create(l)).ToArray()),
                ["anchor_level"] = Vce.AnchorLevel, ["heads"] = Vce.Heads, ["points"] = Vce.Points, ["output_norm"] = Vce.OutputNorm,
            },
            ["data"] = data,
            ["adapter"] = adapter,
            ["stages"] = new JsonObject { ["stage1"] = stage1, ["stage2"] = stage2 },
            ["batch_size"] = BatchSize,
            ["gradient_accumulation"] = GradientAccumulation,
            ["warmup_ratio"] = WarmupRatio,
            ["max_grad_norm"] = MaxGradNorm,
            ["weight_decay"] = WeightDecay,
            ["schedule"] = Schedule == ScheduleKind.Cosine ? "cosine" : "constant",
            ["max_length"] = MaxLength,
            ["seed"] = Seed,
            ["checkpoint_every"] = CheckpointEvery,
            ["precision"] = Precision == TrainingPrecision.BFloat16 ? "bfloat16" : "float32",
            ["tower_cache_mb"] = TowerCacheMegabytes,
            ["output"] = Output,
            ["evaluation"] = new JsonObject { ["batch_size"] = EvaluationOrDefault.BatchSize, ["max_new_tokens"] = EvaluationOrDefault.MaxNewTokens },
        };
        if (Connector is { } connector) json["connector"] = connector;
        return json;
    }

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/> (atomically).</summary>
    public void Write(string path) =>
        AtomicFile.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
}
