using DualLora.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Training;

/// <summary>Parameters that share a learning rate and a weight decay (PyTorch's param_groups), each under its name in the model.</summary>
/// <param name="Name">The group's name in logs and checkpoints ("adapters", "connector").</param>
/// <param name="Parameters">The group's parameters and their names in the model.</param>
/// <param name="LearningRate">The group's peak learning rate; a schedule scales it.</param>
/// <param name="WeightDecay">Decoupled weight decay (the paper's recipe: 0).</param>
public sealed record ParameterGroup(string Name, IReadOnlyList<(string Name, Parameter Parameter)> Parameters, double LearningRate, double WeightDecay = 0);

/// <summary>
/// AdamW (Loshchilov and Hutter), as PyTorch computes it: decoupled weight decay p ← p(1 − lr·wd), then
/// m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g², p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε), with t
/// counted per parameter (a parameter without a gradient is not stepped), over parameter groups of their
/// own learning rate and weight decay. Its state (m, v and t of every parameter, by parameter name) can be
/// saved and restored exactly, so a training run can resume.
/// Why not TorchSharp's optim.AdamW: TorchSharp turns every number it passes to LibTorch into a Scalar
/// object with a finalizer and keeps no reference to it during the native call, so a garbage collection at
/// that moment can free it while LibTorch reads it (seen here as a rare "toDouble" failure inside its
/// step). Here every Scalar of a step is held in a local that lives until the step ends. And its state
/// could not be saved.
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    sealed class State(Tensor expAvg, Tensor expAvgSq)
    {
        public Tensor ExpAvg { get; } = expAvg;
        public Tensor ExpAvgSq { get; } = expAvgSq;
        public long Step { get; set; }
    }

    readonly List<ParameterGroup> groups;
    readonly Dictionary<string, State> states = new(StringComparer.Ordinal);

    public IReadOnlyList<ParameterGroup> Groups => groups;
    /// <summary>Scales every group's learning rate (the schedule's factor); 1 by default.</summary>
    public double LearningRateFactor { get; set; } = 1;
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }

    /// <summary>The learning rate of the first group, as the next step will use it.</summary>
    public double LearningRate => groups[0].LearningRate * LearningRateFactor;

    /// <summary>One group of unnamed parameters (they are named by position: "0", "1", ...).</summary>
    public AdamWOptimizer(IEnumerable<Parameter> parameters, double learningRate = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
        : this([new ParameterGroup("default", parameters.Select((p, i) => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), p)).ToList(), learningRate, weightDecay)], beta1, beta2, eps)
    {
    }

    public AdamWOptimizer(IReadOnlyList<ParameterGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        if (groups.Count == 0) throw new ArgumentException("AdamW: no parameter group.");
        foreach (var group in groups)
            if (group.LearningRate < 0 || group.WeightDecay < 0)
                throw new ArgumentException($"AdamW: group '{group.Name}': invalid settings (lr {group.LearningRate}, weight decay {group.WeightDecay}).");
        if (beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1 || eps < 0)
            throw new ArgumentException($"AdamW: invalid settings (betas ({beta1}, {beta2}), eps {eps}).");
        var duplicate = groups.SelectMany(g => g.Parameters).GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null) throw new ArgumentException($"AdamW: parameter '{duplicate.Key}' is in more than one group.");
        this.groups = groups.ToList();
        Beta1 = beta1; Beta2 = beta2; Eps = eps;
    }

    /// <summary>Clears the gradients (sets them to none, as PyTorch does by default).</summary>
    public void ZeroGrad()
    {
        foreach (var group in groups)
            foreach (var (_, p) in group.Parameters) p.grad = null;
    }

    public void Step()
    {
        using var beta1 = Beta1.ToScalar();
        using var oneMinusBeta1 = (1 - Beta1).ToScalar();
        using var beta2 = Beta2.ToScalar();
        using var oneMinusBeta2 = (1 - Beta2).ToScalar();
        using var eps = Eps.ToScalar();
        using var _ = no_grad();
        foreach (var group in groups)
        {
            double learningRate = group.LearningRate * LearningRateFactor;
            using var decay = (1 - learningRate * group.WeightDecay).ToScalar();
            foreach (var (name, p) in group.Parameters)
            {
                if (p.grad is not { } grad) continue;
                using var scope = NewDisposeScope();
                if (!states.TryGetValue(name, out var state))
                    states[name] = state = new State(zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope());
                state.Step++;
                double biasCorrection1 = 1 - Math.Pow(Beta1, state.Step), biasCorrection2 = 1 - Math.Pow(Beta2, state.Step);
                using var sqrtCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
                using var stepSize = (-learningRate / biasCorrection1).ToScalar();
                if (group.WeightDecay != 0) p.mul_(decay);
                state.ExpAvg.mul_(beta1).add_(grad, alpha: oneMinusBeta1);
                state.ExpAvgSq.mul_(beta2).addcmul_(grad, grad, value: oneMinusBeta2);
                var denominator = state.ExpAvgSq.sqrt().div_(sqrtCorrection2).add_(eps);
                p.addcdiv_(state.ExpAvg, denominator, value: stepSize);
            }
        }
    }

    /// <summary>The moments by name (<c>{parameter}.exp_avg</c>, <c>{parameter}.exp_avg_sq</c>), for a checkpoint; the tensors are the live state, not copies.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> StateTensors() =>
        states.OrderBy(s => s.Key, StringComparer.Ordinal).SelectMany(s => new[]
        {
            new KeyValuePair<string, Tensor>(s.Key + ".exp_avg", s.Value.ExpAvg),
            new KeyValuePair<string, Tensor>(s.Key + ".exp_avg_sq", s.Value.ExpAvgSq),
        });

    /// <summary>How many steps each parameter has taken (t of the bias corrections), by name.</summary>
    public IReadOnlyDictionary<string, long> StateSteps() => states.ToDictionary(s => s.Key, s => s.Value.Step, StringComparer.Ordinal);

    /// <summary>
    /// Replaces the state with a saved one: <paramref name="steps"/> by parameter name and
    /// <paramref name="readTensor"/> giving each moment by its key in <see cref="StateTensors"/>. Every name
    /// must be one of this optimizer's parameters and every moment must have its parameter's shape.
    /// </summary>
    public void LoadState(IReadOnlyDictionary<string, long> steps, Func<string, Tensor> readTensor, string source)
    {
        var parameters = groups.SelectMany(g => g.Parameters).ToDictionary(p => p.Name, p => p.Parameter, StringComparer.Ordinal);
        var unknown = steps.Keys.Where(k => !parameters.ContainsKey(k)).ToList();
        if (unknown.Count > 0) throw new InvalidFileException(source, $"optimizer state for parameters this run does not train: {string.Join(", ", unknown)}.");
        var loaded = new Dictionary<string, State>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, step) in steps)
            {
                var p = parameters[name];
                Tensor Read(string key)
                {
                    using var stored = readTensor(key);
                    if (!stored.shape.SequenceEqual(p.shape))
                        throw new InvalidFileException(source, $"'{key}' is [{string.Join(", ", stored.shape)}], its parameter [{string.Join(", ", p.shape)}].");
                    return stored.to(p.dtype, p.device, copy: true).DetachFromDisposeScope();
                }
                loaded[name] = new State(Read(name + ".exp_avg"), Read(name + ".exp_avg_sq")) { Step = step };
            }
        }
        catch
        {
            foreach (var state in loaded.Values) { state.ExpAvg.Dispose(); state.ExpAvgSq.Dispose(); }
            throw;
        }
        Dispose();
        foreach (var (name, state) in loaded) states[name] = state;
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
