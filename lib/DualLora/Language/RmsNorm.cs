using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Language;

/// <summary>RMSNorm: x / sqrt(mean(x²) + eps) · weight, computed in float32 at least (as HF LLaMA does).</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    readonly Scalar eps;   // held, so the GC cannot finalize it while LibTorch reads it

    public RmsNorm(long size, double eps, ScalarType? dtype = null) : base(nameof(RmsNorm))
    {
        weight = new Parameter(ones(size, dtype: dtype));
        this.eps = eps.ToScalar();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var wide = x.dtype is ScalarType.Float64 ? x : x.to(ScalarType.Float32);
        var normalised = wide * rsqrt(wide.square().mean([-1], keepdim: true).add(eps));
        return weight * normalised.to(x.dtype);
    }
}
