using static TorchSharp.torch;

namespace DualLora.Analysis;

/// <summary>
/// How spread out a token's activation is over the r ranks (METHOD.md §5): with p_i = |v_i| / Σ_j |v_j|,
/// H = −Σ_i p_i log p_i, averaged over tokens. log r for a perfectly even activation, 0 for a single rank;
/// a token whose activation is all zero counts as 0. The paper reports lower entropy (more localized
/// activation) for the rectified skill space s ⊙ ReLU(T x) than for the holistic s.
/// </summary>
public static class ActivationEntropy
{
    /// <summary>The mean entropy over all leading dimensions of <paramref name="values"/> (..., r), in nats.</summary>
    public static double Mean(Tensor values)
    {
        using var scope = NewDisposeScope();
        var magnitude = values.detach().abs().to(ScalarType.Float64).reshape(-1, values.shape[^1]);
        var total = magnitude.sum(1, keepdim: true);
        var p = magnitude / total.clamp_min(double.Epsilon);
        var terms = where(p.gt(0), p * p.log(), zeros_like(p));
        return (-terms.sum(1)).mean().item<double>();
    }
}
