using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// LoRA mixture of experts (METHOD.md §2): Delta(x) = s · Σ_i w_i(x) B_i A_i dropout(x), w from a router
/// R: d_in → E. The experts are stored side by side, lora_A = [A_1; ...; A_E] (Σr_i × d_in) and
/// lora_B = [B_1 ... B_E] (d_out × Σr_i), so Σ_i w_i B_i A_i x = B (g ⊙ A x) with g = w repeated over each
/// expert's ranks: three matrix products however many experts there are.
/// </summary>
public sealed class MoeLoraAdapter : Adapter
{
    public readonly Linear lora_A;
    public readonly Linear lora_B;
    public readonly Linear lora_router;
    readonly MoeLoraConfig config;
    readonly long[] ranks;
    Tensor? auxiliaryLoss;
    readonly Scalar scaling;   // held, so the GC cannot finalize it while LibTorch reads it

    public double Scaling { get; }
    public MoeLoraConfig Config => config;

    public MoeLoraAdapter(long inFeatures, long outFeatures, MoeLoraConfig config, Device device, ScalarType dtype) : base(nameof(MoeLoraAdapter))
    {
        config.Validate();
        this.config = config;
        ranks = config.Ranks.Select(r => (long)r).ToArray();
        long totalRank = ranks.Sum();
        lora_A = nn.Linear(inFeatures, totalRank, hasBias: false, device: device, dtype: dtype);
        lora_B = nn.Linear(totalRank, outFeatures, hasBias: false, device: device, dtype: dtype);
        lora_router = nn.Linear(inFeatures, config.Experts, hasBias: false, device: device, dtype: dtype);
        using (no_grad())
        {
            // Each A_i kaiming-uniform over d_in: the same bound for every expert, so one call covers them all.
            nn.init.kaiming_uniform_(lora_A.weight, a: Math.Sqrt(5));
            nn.init.zeros_(lora_B.weight);
            nn.init.kaiming_uniform_(lora_router.weight, a: Math.Sqrt(5));
        }
        Scaling = config.Scaling;
        scaling = Scaling.ToScalar();
        RegisterComponents();
    }

    public override Tensor Delta(Tensor x, bool training)
    {
        var weights = RoutingWeights(x);
        if (training && config.AuxiliaryLossWeight > 0) auxiliaryLoss = config.AuxiliaryLossWeight * AuxiliaryLossOf(x, weights);
        var input = config.Dropout > 0 && training ? nn.functional.dropout(x, config.Dropout, training) : x;
        using var repeats = tensor(ranks, device: x.device);
        var gates = weights.repeat_interleave(repeats, dim: -1);
        return lora_B.call(lora_A.call(input) * gates).mul(scaling);
    }

    /// <summary>The weight of each expert for each token, (..., E): the quantity the routing strategies differ in.</summary>
    public Tensor RoutingWeights(Tensor x) => Route(lora_router.call(x), config);

    /// <summary>Routing weights (..., E) from router logits (..., E) under <paramref name="config"/>'s routing.</summary>
    public static Tensor Route(Tensor logits, MoeLoraConfig config)
    {
        switch (config.Routing)
        {
            case Routing.Dense:
                return nn.functional.softmax(logits, -1);
            case Routing.Rectified:
                return nn.functional.relu(logits);
            default:
                // softmax over the k largest logits equals softmax over all, kept at the top k and renormalised.
                var (values, indices) = logits.topk(config.TopK, dim: -1);
                return zeros_like(logits).scatter(-1, indices, nn.functional.softmax(values, -1));
        }
    }

    Tensor AuxiliaryLossOf(Tensor x, Tensor weights)
    {
        var flat = weights.reshape(-1, config.Experts);
        if (config.Routing == Routing.Rectified)
            return flat.abs().sum(-1).mean();                                   // L1 of the routing weights (ReMoE)
        // Switch-style balance: E · Σ_i f_i P_i, f_i the share of routing slots given to expert i, P_i its mean router probability.
        var probabilities = nn.functional.softmax(lora_router.call(x).reshape(-1, config.Experts), -1);
        var share = flat.gt(0).to(probabilities.dtype).mean([0]) / (config.Routing == Routing.TopK ? config.TopK : config.Experts);
        return config.Experts * (share * probabilities.mean([0])).sum();
    }

    public override Tensor? AuxiliaryLoss => auxiliaryLoss is { IsInvalid: false } loss ? loss : null;
}
