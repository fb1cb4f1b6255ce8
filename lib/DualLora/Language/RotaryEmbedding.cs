using static TorchSharp.torch;

namespace DualLora.Language;

/// <summary>
/// Rotary position embedding in HF LLaMA's layout: frequencies θ^(−2i/d) for i &lt; d/2, duplicated over the
/// two halves of a head, and q·cos + rotate_half(q)·sin with rotate_half(x) = [−x₂, x₁].
/// </summary>
public static class RotaryEmbedding
{
    /// <summary>cos and sin for the given positions (batch, length) → each (batch, 1, length, head_dim).</summary>
    public static (Tensor Cos, Tensor Sin) For(Tensor positions, int headDim, double theta, ScalarType dtype)
    {
        var inverse = pow(theta, -arange(0, headDim, 2, dtype: ScalarType.Float64, device: positions.device) / headDim);
        var angles = positions.to(ScalarType.Float64).unsqueeze(-1) * inverse;          // (batch, length, d/2)
        var both = cat([angles, angles], -1).unsqueeze(1);                              // (batch, 1, length, d)
        return (both.cos().to(dtype), both.sin().to(dtype));
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var halves = x.chunk(2, -1);
        var rotated = cat([-halves[1], halves[0]], -1);
        return x * cos + rotated * sin;
    }
}
