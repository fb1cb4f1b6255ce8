using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// The trainable part attached to an <see cref="AdaptableLinear"/>: it adds Delta(x) to the frozen base
/// output W0 x + b0. Its submodules (lora_A, lora_B, ...) are registered on the layer it is attached to,
/// not on the adapter, so the adapter itself never appears in module paths.
/// </summary>
public abstract class Adapter(string name) : nn.Module(name)
{
    /// <summary>The update added to the base layer's output for input <paramref name="x"/> (..., d_in) → (..., d_out).</summary>
    public abstract Tensor Delta(Tensor x, bool training);

    /// <summary>Why this adapter cannot be folded into the base weight (null when it can).</summary>
    public virtual string? WhyNotMergeable => "its update is not linear in x";

    /// <summary>An auxiliary loss from the last training forward pass (router balance or sparsity), or null.</summary>
    public virtual Tensor? AuxiliaryLoss => null;
}

/// <summary>An adapter whose update is a fixed matrix ΔW (d_out, d_in): y = (W0 + ΔW) x + b0.</summary>
public interface IMergeableAdapter
{
    Tensor DeltaWeight();
}
