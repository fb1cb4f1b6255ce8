using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Training;

/// <summary>
/// AdamW (Loshchilov and Hutter), as PyTorch computes it: decoupled weight decay p ← p(1 − lr·wd), then
/// m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g², p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε).
/// Why not TorchSharp's optim.AdamW: TorchSharp turns every number it passes to LibTorch into a Scalar
/// object with a finalizer and keeps no reference to it during the native call, so a garbage collection at
/// that moment can free it while LibTorch reads it (seen here as a rare "toDouble" failure inside its
/// step). Here every Scalar of a step is held in a local that lives until the step ends.
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    sealed record State(Tensor ExpAvg, Tensor ExpAvgSq);

    readonly List<Parameter> parameters;
    readonly Dictionary<Parameter, State> states = new(ReferenceEqualityComparer.Instance);
    long step;

    public double LearningRate { get; set; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }

    public AdamWOptimizer(IEnumerable<Parameter> parameters, double learningRate = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
    {
        this.parameters = parameters.ToList();
        if (learningRate < 0 || beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1 || eps < 0 || weightDecay < 0)
            throw new ArgumentException($"AdamW: invalid settings (lr {learningRate}, betas ({beta1}, {beta2}), eps {eps}, weight decay {weightDecay}).");
        LearningRate = learningRate; Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
    }

    /// <summary>Clears the gradients (sets them to none, as PyTorch does by default).</summary>
    public void ZeroGrad()
    {
        foreach (var p in parameters) p.grad = null;
    }

    public void Step()
    {
        step++;
        double biasCorrection1 = 1 - Math.Pow(Beta1, step), biasCorrection2 = 1 - Math.Pow(Beta2, step);
        using var decay = (1 - LearningRate * WeightDecay).ToScalar();
        using var beta1 = Beta1.ToScalar();
        using var oneMinusBeta1 = (1 - Beta1).ToScalar();
        using var beta2 = Beta2.ToScalar();
        using var oneMinusBeta2 = (1 - Beta2).ToScalar();
        using var sqrtCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
        using var eps = Eps.ToScalar();
        using var stepSize = (-LearningRate / biasCorrection1).ToScalar();
        using var _ = no_grad();
        foreach (var p in parameters)
        {
            if (p.grad is not { } grad) continue;
            using var scope = NewDisposeScope();
            if (!states.TryGetValue(p, out var state))
                states[p] = state = new State(zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope());
            if (WeightDecay != 0) p.mul_(decay);
            state.ExpAvg.mul_(beta1).add_(grad, alpha: oneMinusBeta1);
            state.ExpAvgSq.mul_(beta2).addcmul_(grad, grad, value: oneMinusBeta2);
            var denominator = state.ExpAvgSq.sqrt().div_(sqrtCorrection2).add_(eps);
            p.addcdiv_(state.ExpAvg, denominator, value: stepSize);
        }
    }

    public void Dispose()
    {
        foreach (var state in states.Values)
        {
            state.ExpAvg.Dispose();
            state.ExpAvgSq.Dispose();
        }
        states.Clear();
    }
}
