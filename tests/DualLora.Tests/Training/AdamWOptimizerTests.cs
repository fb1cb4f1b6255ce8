using DualLora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Tests.Training;

public class AdamWOptimizerTests
{
    [Fact]
    public void The_first_step_moves_each_weight_by_lr_times_the_gradient_sign_after_decay()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(tensor(new double[] { 1.0, -2.0, 0.5 }));
        using var optimizer = new AdamWOptimizer([p], learningRate: 0.1, weightDecay: 0.01, eps: 1e-8);
        p.grad = tensor(new double[] { 0.3, -4.0, 0 });
        optimizer.Step();
        // p(1 − lr·wd) − lr · g / (|g| + ε): bias correction makes m̂ = g and v̂ = g² on the first step.
        double[] expected = [1.0 * 0.999 - 0.1 * 0.3 / (0.3 + 1e-8), -2.0 * 0.999 + 0.1 * 4.0 / (4.0 + 1e-8), 0.5 * 0.999];
        var actual = p.data<double>().ToArray();
        for (int i = 0; i < 3; i++) Assert.Equal(expected[i], actual[i], 12);
    }

    [Fact]
    public void Several_steps_match_TorchSharps_AdamW()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(3);
        var start = randn(4, 3, dtype: ScalarType.Float64, generator: generator);
        var ours = new Parameter(start.clone());
        var theirs = new Parameter(start.clone());
        using var mine = new AdamWOptimizer([ours], learningRate: 0.05, weightDecay: 0.1);
        using var reference = optim.AdamW([theirs], lr: 0.05, weight_decay: 0.1);
        for (int step = 0; step < 6; step++)
        {
            var gradient = randn(4, 3, dtype: ScalarType.Float64, generator: generator);
            ours.grad = gradient.clone();
            theirs.grad = gradient.clone();
            mine.Step();
            reference.step();
        }
        Assert.True(ours.allclose(theirs, rtol: 1e-12, atol: 1e-12), $"max difference {(ours - theirs).abs().max().item<double>()}");
    }

    [Fact]
    public void Parameters_without_a_gradient_are_left_alone()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(ones(2));
        using var optimizer = new AdamWOptimizer([p], learningRate: 1, weightDecay: 0.5);
        optimizer.ZeroGrad();
        optimizer.Step();
        Assert.Equal(new float[] { 1, 1 }, p.data<float>().ToArray());
    }

    [Fact]
    public void Groups_step_at_their_own_rates_and_a_late_parameter_counts_its_own_steps_as_TorchSharps_AdamW_does()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(5);
        var (a0, b0) = (randn(3, dtype: ScalarType.Float64, generator: generator), randn(2, 2, dtype: ScalarType.Float64, generator: generator));
        var (a, b) = (new Parameter(a0.clone()), new Parameter(b0.clone()));
        var (refA, refB) = (new Parameter(a0.clone()), new Parameter(b0.clone()));
        using var mine = new AdamWOptimizer([new ParameterGroup("adapters", [("a", a)], 0.05, 0.1), new ParameterGroup("connector", [("b", b)], 0.01)]);
        using var referenceA = optim.AdamW([refA], lr: 0.05, weight_decay: 0.1);
        using var referenceB = optim.AdamW([refB], lr: 0.01, weight_decay: 0);
        for (int step = 0; step < 5; step++)
        {
            var (gradA, gradB) = (randn(3, dtype: ScalarType.Float64, generator: generator), randn(2, 2, dtype: ScalarType.Float64, generator: generator));
            (a.grad, refA.grad) = (gradA.clone(), gradA.clone());
            (b.grad, refB.grad) = step < 2 ? (null, null) : (gradB.clone(), gradB.clone());   // b takes its first step at step 3
            mine.Step();
            referenceA.step();
            referenceB.step();
        }
        Assert.True(a.allclose(refA, rtol: 1e-12, atol: 1e-12));
        Assert.True(b.allclose(refB, rtol: 1e-12, atol: 1e-12));
        Assert.Equal(new Dictionary<string, long> { ["a"] = 5, ["b"] = 3 }, mine.StateSteps());
        Assert.Contains("'b' is in more than one group", Assert.Throws<ArgumentException>(() =>
            new AdamWOptimizer([new ParameterGroup("x", [("b", b)], 0.1), new ParameterGroup("y", [("b", b)], 0.1)])).Message);
    }
}
