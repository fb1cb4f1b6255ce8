using DualLora.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Cli.Benchmarks;

/// <summary>
/// A LoRA mixture computed as LoRA-MoE implementations compute it: one A_i, B_i pair of modules per expert and
/// a loop that adds w_i(x) · B_i A_i dropout(x). It is the same function as <see cref="MoeLoraAdapter"/> (which
/// stores the experts side by side and needs three matrix products however many experts there are); the
/// benchmarks time it so that the paper's figure against a 4-expert LoRA-MoE can be compared like for like.
/// Keys: <c>lora_A.{i}.weight</c>, <c>lora_B.{i}.weight</c>, <c>lora_router.weight</c>. Not saved by
/// <c>AdapterFiles</c>: it exists for timing only.
/// </summary>
public sealed record LoopedMoeLoraConfig(MoeLoraConfig Mixture) : AdapterConfig
{
    public override string PeftType => "MOE_LORA_LOOPED";
    public override double Scaling => Mixture.Scaling;
    public override long ParameterCount(long inFeatures, long outFeatures) => Mixture.ParameterCount(inFeatures, outFeatures);
    public override Adapter Create(long inFeatures, long outFeatures, Device device, ScalarType dtype) => new LoopedMoeLoraAdapter(inFeatures, outFeatures, Mixture, device, dtype);
    public override void Validate() => Mixture.Validate();
}

/// <inheritdoc cref="LoopedMoeLoraConfig"/>
public sealed class LoopedMoeLoraAdapter : Adapter
{
    public readonly ModuleList<Linear> lora_A;
    public readonly ModuleList<Linear> lora_B;
    public readonly Linear lora_router;
    readonly MoeLoraConfig config;
    readonly Scalar scaling;   // held, so the GC cannot finalize it while LibTorch reads it

    public LoopedMoeLoraAdapter(long inFeatures, long outFeatures, MoeLoraConfig config, Device device, ScalarType dtype) : base(nameof(LoopedMoeLoraAdapter))
    {
        config.Validate();
        this.config = config;
        lora_A = nn.ModuleList(config.Ranks.Select(r => nn.Linear(inFeatures, r, hasBias: false, device: device, dtype: dtype)).ToArray());
        lora_B = nn.ModuleList(config.Ranks.Select(r => nn.Linear(r, outFeatures, hasBias: false, device: device, dtype: dtype)).ToArray());
        lora_router = nn.Linear(inFeatures, config.Experts, hasBias: false, device: device, dtype: dtype);
        using (no_grad())
        {
            foreach (var a in lora_A) nn.init.kaiming_uniform_(a.weight, a: Math.Sqrt(5));
            foreach (var b in lora_B) nn.init.zeros_(b.weight);
            nn.init.kaiming_uniform_(lora_router.weight, a: Math.Sqrt(5));
        }
        scaling = config.Scaling.ToScalar();
        RegisterComponents();
    }

    public override Tensor Delta(Tensor x, bool training)
    {
        var weights = MoeLoraAdapter.Route(lora_router.call(x), config);
        var input = config.Dropout > 0 && training ? nn.functional.dropout(x, config.Dropout, training) : x;
        Tensor? sum = null;
        for (int expert = 0; expert < lora_A.Count; expert++)
        {
            var term = lora_B[expert].call(lora_A[expert].call(input)) * weights.narrow(-1, expert, 1);
            sum = sum is null ? term : sum + term;
        }
        return sum!.mul(scaling);
    }

    /// <summary>Copies a fused mixture's experts into this one's modules (the same function afterwards).</summary>
    public void CopyFrom(MoeLoraAdapter fused)
    {
        using var _ = no_grad();
        long offset = 0;
        for (int expert = 0; expert < lora_A.Count; expert++)
        {
            long rank = config.Ranks[expert];
            lora_A[expert].weight.copy_(fused.lora_A.weight.narrow(0, offset, rank));
            lora_B[expert].weight.copy_(fused.lora_B.weight.narrow(1, offset, rank));
            offset += rank;
        }
        lora_router.weight.copy_(fused.lora_router.weight);
    }
}
