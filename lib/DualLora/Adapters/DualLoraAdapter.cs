using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// Dual-LoRA (METHOD.md §1). The skill space A holds holistic knowledge; the task space T gates it per token
/// and per rank:
/// <code>
///   s = LN_r(A · dropout(x))     t = ReLU(T · x)     Delta(x) = scaling · B (s ⊙ t)
/// </code>
/// so B(s ⊙ t) = Σ_i ReLU(t_i) s_i b_i: every rank is a rank-1 expert switched on and off by its own
/// non-negative, differentiable gate, with no router, softmax or top-k.
/// A and T read the same x: without dropout (inference, or p = 0) both come from one matrix product with
/// [A; T]; in training with dropout A reads the dropped-out x, so the two products stay separate.
/// </summary>
public sealed class DualLoraAdapter : Adapter
{
    public readonly Linear lora_A;
    public readonly Linear lora_T;
    public readonly Linear lora_B;
    public readonly LayerNorm? lora_ln;
    readonly double dropout;
    readonly bool useRelu;
    readonly long rank;
    readonly Scalar scaling;   // held, so the GC cannot finalize it while LibTorch reads it

    public double Scaling { get; }

    public DualLoraAdapter(long inFeatures, long outFeatures, DualLoraConfig config, Device device, ScalarType dtype) : base(nameof(DualLoraAdapter))
    {
        config.Validate();
        rank = config.Rank;
        lora_A = nn.Linear(inFeatures, rank, hasBias: false, device: device, dtype: dtype);
        lora_T = nn.Linear(inFeatures, rank, hasBias: false, device: device, dtype: dtype);
        lora_B = nn.Linear(rank, outFeatures, hasBias: false, device: device, dtype: dtype);
        if (config.UseLayerNorm) lora_ln = nn.LayerNorm(rank, eps: 1e-5, elementwise_affine: true, device: device, dtype: dtype);
        using (no_grad())
        {
            nn.init.kaiming_uniform_(lora_A.weight, a: Math.Sqrt(5));
            nn.init.kaiming_uniform_(lora_T.weight, a: Math.Sqrt(5));
            nn.init.zeros_(lora_B.weight);
        }
        dropout = config.Dropout;
        useRelu = config.UseRelu;
        Scaling = config.Scaling;
        scaling = Scaling.ToScalar();
        RegisterComponents();
    }

    public override Tensor Delta(Tensor x, bool training)
    {
        var (skill, task) = Subspaces(x, training);
        return lora_B.call(skill * task).mul(scaling);
    }

    /// <summary>
    /// The two subspace outputs, each (..., r): the holistic skill coordinates s = LN(A x) and the
    /// rank-wise gates t = ReLU(T x) (without the switches' parts when they are off). Public for the
    /// notebooks' analysis of the rectified skill space s ⊙ t.
    /// </summary>
    public (Tensor Skill, Tensor Task) Subspaces(Tensor x, bool training = false)
    {
        Tensor skill, task;
        if (dropout > 0 && training)
        {
            skill = lora_A.call(nn.functional.dropout(x, dropout, training));
            task = lora_T.call(x);
        }
        else
        {
            using var fused = cat([lora_A.weight, lora_T.weight], 0);
            var both = nn.functional.linear(x, fused);
            skill = both.narrow(-1, 0, rank);
            task = both.narrow(-1, rank, rank);
        }
        if (lora_ln is not null) skill = lora_ln.call(skill);
        if (useRelu) task = nn.functional.relu(task);
        return (skill, task);
    }
}
