using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// Which layers get an adapter and which other modules train, as in HF PEFT: target modules by name (an
/// exact module path or its last segments, e.g. <c>q_proj</c> or <c>self_attn.q_proj</c>) or by a regular
/// expression that must match the whole path; <see cref="ModulesToSave"/> names modules (the projector,
/// VCE) whose own weights stay trainable and are saved with the adapter. With neither given, injection
/// takes the model's own default (<see cref="IDefaultAdapterTargets"/>, as PEFT keeps one per
/// architecture), else <see cref="DefaultTargetModules"/>.
/// </summary>
public abstract record AdapterConfig
{
    /// <summary>METHOD.md §1: the attention's query and value projections.</summary>
    public static readonly IReadOnlyList<string> DefaultTargetModules = ["q_proj", "v_proj"];

    public IReadOnlyList<string>? TargetModules { get; init; }
    public string? TargetRegex { get; init; }
    public IReadOnlyList<string> ModulesToSave { get; init; } = [];

    /// <summary>
    /// The config for one layer: where a rank pattern (PEFT's <c>rank_pattern</c>: module path or its last
    /// segments → rank) names the layer, the same config with that rank; otherwise this config.
    /// </summary>
    public virtual AdapterConfig ForLayer(string path) => this;

    protected static int? PatternRank(IReadOnlyDictionary<string, int> pattern, string path) =>
        pattern.Where(p => path == p.Key || path.EndsWith("." + p.Key, StringComparison.Ordinal)).Select(p => (int?)p.Value).FirstOrDefault();

    /// <summary>The <c>peft_type</c> written to adapter_config.json.</summary>
    public abstract string PeftType { get; }
    /// <summary>The multiplier of the adapter's update.</summary>
    public abstract double Scaling { get; }
    /// <summary>Trainable parameters the adapter adds to one d_in → d_out layer.</summary>
    public abstract long ParameterCount(long inFeatures, long outFeatures);
    public abstract Adapter Create(long inFeatures, long outFeatures, Device device, ScalarType dtype);
    /// <summary>Throws <see cref="ArgumentException"/> naming the field at fault.</summary>
    public abstract void Validate();

    /// <summary>This config with its targets spelled out for <paramref name="model"/>: the model's default when none is given.</summary>
    public AdapterConfig WithTargetsFor(nn.Module model) =>
        TargetRegex != null || TargetModules != null ? this
        : model is IDefaultAdapterTargets own ? this with { TargetRegex = own.DefaultAdapterTargets }
        : this with { TargetModules = DefaultTargetModules };

    protected static void Require(bool condition, string field, string fault)
    {
        if (!condition) throw new ArgumentException($"{field}: {fault}");
    }
}

/// <summary>A model that says which of its layers adapters target by default (a regular expression over module paths).</summary>
public interface IDefaultAdapterTargets
{
    string DefaultAdapterTargets { get; }
}

/// <summary>LoRA (Hu et al.; HF PEFT): y = W0 x + b0 + s · B A dropout(x), s = α/r (rsLoRA: α/√r).</summary>
public sealed record LoraConfig(int Rank = 8, double Alpha = 16, double Dropout = 0.05, bool UseRsLora = false) : AdapterConfig
{
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();
    public override AdapterConfig ForLayer(string path) => PatternRank(RankPattern, path) is int r ? this with { Rank = r, RankPattern = new Dictionary<string, int>() } : this;
    public override string PeftType => "LORA";
    public override double Scaling => UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;
    public override long ParameterCount(long inFeatures, long outFeatures) => Rank * (inFeatures + outFeatures);
    public override Adapter Create(long inFeatures, long outFeatures, Device device, ScalarType dtype) => new LoraAdapter(inFeatures, outFeatures, this, device, dtype);

    public override void Validate()
    {
        Require(Rank >= 1, "r", $"the rank must be at least 1, got {Rank}.");
        Require(RankPattern.Values.All(r => r >= 1), "rank_pattern", "every rank must be at least 1.");
        Require(Dropout is >= 0 and < 1, "lora_dropout", $"must be in [0, 1), got {Dropout}.");
    }
}

/// <summary>
/// Dual-LoRA (METHOD.md §1): s = LN(A dropout(x)), t = ReLU(T x), y = W0 x + b0 + s_α · B (s ⊙ t),
/// α = 2r unless given (the authors hard-code a scaling of 2). The LayerNorm and the ReLU can be switched
/// off for the paper's ablation.
/// </summary>
public sealed record DualLoraConfig(int Rank = 32, double? Alpha = null, double Dropout = 0.05, bool UseLayerNorm = true, bool UseRelu = true) : AdapterConfig
{
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();
    public override AdapterConfig ForLayer(string path) => PatternRank(RankPattern, path) is int r ? this with { Rank = r, RankPattern = new Dictionary<string, int>() } : this;
    public override string PeftType => "DUAL_LORA";
    public double EffectiveAlpha => Alpha ?? 2.0 * Rank;
    public override double Scaling => EffectiveAlpha / Rank;
    public override long ParameterCount(long inFeatures, long outFeatures) => Rank * (2 * inFeatures + outFeatures) + (UseLayerNorm ? 2 * Rank : 0);
    public override Adapter Create(long inFeatures, long outFeatures, Device device, ScalarType dtype) => new DualLoraAdapter(inFeatures, outFeatures, this, device, dtype);

    public override void Validate()
    {
        Require(Rank >= 1, "r", $"the rank must be at least 1, got {Rank}.");
        Require(RankPattern.Values.All(r => r >= 1), "rank_pattern", "every rank must be at least 1.");
        Require(Dropout is >= 0 and < 1, "lora_dropout", $"must be in [0, 1), got {Dropout}.");
    }
}

/// <summary>How a LoRA-MoE weighs its experts per token (METHOD.md §2).</summary>
public enum Routing
{
    /// <summary>softmax(R x) over all experts (LoRAMoE, HydraLoRA).</summary>
    Dense,
    /// <summary>softmax, keep the top k, renormalise (MoLA, MixLoRA, Octavius).</summary>
    TopK,
    /// <summary>ReLU(R x), no normalisation (RoDE, ReMoE).</summary>
    Rectified,
}

/// <summary>
/// A LoRA mixture of experts: y = W0 x + b0 + s · Σ_i w_i(x) B_i A_i dropout(x), router R: d_in → E without
/// bias, s = α / r_e. <see cref="ExpertRanks"/> may give each expert its own rank (used to match parameter
/// budgets, where equal ranks move in steps too coarse); otherwise all have <see cref="ExpertRank"/>.
/// The optional auxiliary loss (off when its weight is 0) is the load-balancing loss for top-k routing and
/// the L1 norm of the routing weights for rectified routing.
/// </summary>
public sealed record MoeLoraConfig(Routing Routing, int Experts = 4, int ExpertRank = 8, double Alpha = 16, int TopK = 2,
    double Dropout = 0.05, double AuxiliaryLossWeight = 0, IReadOnlyList<int>? ExpertRanks = null) : AdapterConfig
{
    /// <summary>Module path (or its last segments) → the total rank of that layer's experts, spread evenly over them.</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();
    public override AdapterConfig ForLayer(string path) => PatternRank(RankPattern, path) is int total ? WithTotalRank(total) with { RankPattern = new Dictionary<string, int>() } : this;

    /// <summary>This config with <paramref name="total"/> ranks spread over the experts, the first ones taking one more.</summary>
    public MoeLoraConfig WithTotalRank(int total) => this with
    {
        ExpertRanks = Enumerable.Range(0, Experts).Select(i => total / Experts + (i < total % Experts ? 1 : 0)).ToList(),
        ExpertRank = (total + Experts - 1) / Experts,
    };

    public override string PeftType => "MOE_LORA";
    public IReadOnlyList<int> Ranks => ExpertRanks ?? Enumerable.Repeat(ExpertRank, Experts).ToList();
    public override double Scaling => Alpha / ExpertRank;
    public override long ParameterCount(long inFeatures, long outFeatures) => Ranks.Sum() * (inFeatures + outFeatures) + Experts * inFeatures;
    public override Adapter Create(long inFeatures, long outFeatures, Device device, ScalarType dtype) => new MoeLoraAdapter(inFeatures, outFeatures, this, device, dtype);

    public override void Validate()
    {
        Require(Experts >= 1, "num_experts", $"must be at least 1, got {Experts}.");
        Require(ExpertRank >= 1, "expert_r", $"must be at least 1, got {ExpertRank}.");
        Require(ExpertRanks == null || (ExpertRanks.Count == Experts && ExpertRanks.All(r => r >= 1)), "expert_ranks",
            $"must hold {Experts} ranks of at least 1, got [{string.Join(", ", ExpertRanks ?? [])}].");
        Require(Routing != Routing.TopK || TopK is >= 1 && TopK <= Experts, "top_k", $"must be between 1 and {Experts}, got {TopK}.");
        Require(Dropout is >= 0 and < 1, "lora_dropout", $"must be in [0, 1), got {Dropout}.");
        Require(RankPattern.Values.All(r => r >= Experts), "rank_pattern", $"every layer needs a total rank of at least {Experts} (one per expert).");
        Require(AuxiliaryLossWeight >= 0, "aux_loss_weight", $"must not be negative, got {AuxiliaryLossWeight}.");
        Require(AuxiliaryLossWeight == 0 || Routing != Routing.Dense, "aux_loss_weight", "dense routing has no auxiliary loss (top-k has load balancing, rectified has L1).");
    }
}
