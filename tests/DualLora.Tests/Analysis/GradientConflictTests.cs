using DualLora.Analysis;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Tests.Analysis;

public sealed class GradientConflictTests
{
    /// <summary>Two bias-free linear maps R³ → R² and a dropout; a batch (x, y) has the loss Σ first(x) + Σ second(dropout(y)).</summary>
    sealed class TwoMaps : nn.Module<Tensor, Tensor>
    {
        public readonly Linear first = nn.Linear(3, 2, hasBias: false), second = nn.Linear(3, 2, hasBias: false);
        public readonly Dropout dropout = nn.Dropout(0.5);
        public TwoMaps() : base(nameof(TwoMaps)) => RegisterComponents();
        public override Tensor forward(Tensor input) => throw new NotSupportedException();
        public Tensor Loss((Tensor X, Tensor Y) batch) => first.call(batch.X).sum() + second.call(dropout.call(batch.Y)).sum();
    }

    static (Tensor, Tensor) Batch(double[] x, double[] y) => (tensor(x.Select(v => (float)v).ToArray()), tensor(y.Select(v => (float)v).ToArray()));

    static double Cosine(double[] a, double[] b) =>
        a.Zip(b, (p, q) => p * q).Sum() / Math.Sqrt(a.Sum(v => v * v) * b.Sum(v => v * v));

    // ∂/∂W Σ W x = 1 xᵀ: every row of the gradient is x, so the cosine of two tasks is that of their x's (summed over batches).
    [Fact]
    public void Cosines_equal_the_hand_computed_ones_overall_and_per_group_and_a_task_with_itself_is_1()
    {
        using var scope = NewDisposeScope();
        using var model = new TwoMaps();
        var tasks = new[]
        {
            new TaskBatches<(Tensor, Tensor)>("a", [Batch([1, 0, 2], [0, 1, 0]), Batch([0, 1, 0], [1, 0, 0])]),   // Σx = (1, 1, 2), Σy = (1, 1, 0)
            new TaskBatches<(Tensor, Tensor)>("b", [Batch([-1, 2, 0], [0, 0, 3])]),
        };
        var parameters = new List<(string, Parameter)> { ("first.weight", model.first.weight), ("second.weight", model.second.weight) };

        var conflict = GradientConflict.Measure(model, parameters, tasks, model.Loss, name => name.Split('.')[0]);

        double[] xa = [1, 1, 2], ya = [1, 1, 0], xb = [-1, 2, 0], yb = [0, 0, 3];
        var overall = conflict.Overall.Cosines;
        Assert.Equal(1, overall[0, 0].ToDouble(), 12);
        Assert.Equal(1, overall[1, 1].ToDouble(), 12);
        Assert.Equal(Cosine([.. xa, .. ya], [.. xb, .. yb]), overall[0, 1].ToDouble(), 6);
        Assert.Equal(overall[0, 1].ToDouble(), overall[1, 0].ToDouble(), 12);
        // Each gradient has two rows of (x, y): its norm is √2 ‖(x, y)‖.
        Assert.Equal(Math.Sqrt(2 * (6 + 2)), conflict.Overall.Norms[0], 5);

        Assert.Equal(["first", "second"], conflict.Groups.Select(g => g.Group));
        Assert.Equal(Cosine(xa, xb), conflict.Groups[0].Cosines[0, 1].ToDouble(), 6);
        Assert.Equal(0, conflict.Groups[1].Cosines[0, 1].ToDouble(), 6);    // (1, 1, 0) ⟂ (0, 0, 3)
        Assert.Equal(["a", "b"], conflict.Tasks);
    }

    [Fact]
    public void Dropout_is_off_while_measuring_and_the_model_is_left_as_it_was()
    {
        using var scope = NewDisposeScope();
        using var model = new TwoMaps();
        model.train();
        var tasks = new[] { new TaskBatches<(Tensor, Tensor)>("a", [Batch([1, 2, 3], [1, 2, 3])]), new("b", [Batch([3, 2, 1], [1, 0, 1])]) };
        var onlySecond = new List<(string, Parameter)> { ("second.weight", model.second.weight) };

        var once = GradientConflict.Measure(model, onlySecond, tasks, model.Loss);
        var again = GradientConflict.Measure(model, onlySecond, tasks, model.Loss);

        // With dropout on, the gradient of second would be a random draw; off, the cosine is exact and repeatable.
        Assert.Equal(Cosine([1, 2, 3], [1, 0, 1]), once.Overall.Cosines[0, 1].ToDouble(), 6);
        Assert.Equal(once.Overall.Cosines[0, 1].ToDouble(), again.Overall.Cosines[0, 1].ToDouble(), 12);
        Assert.True(model.training && model.dropout.training);
        Assert.True(model.first.weight.requires_grad);
        Assert.Null(model.first.weight.grad);                               // frozen while measuring: no gradient accumulated
        Assert.Equal(0, model.second.weight.grad!.abs().sum().ToDouble());  // cleared
    }

    [Fact]
    public void Bad_input_is_a_clear_error()
    {
        using var scope = NewDisposeScope();
        using var model = new TwoMaps();
        var parameters = new List<(string, Parameter)> { ("first.weight", model.first.weight) };
        var a = new TaskBatches<(Tensor, Tensor)>("a", [Batch([1, 0, 0], [0, 0, 0])]);

        Assert.Contains("at least two tasks", Assert.Throws<ArgumentException>(() => GradientConflict.Measure(model, parameters, [a], model.Loss)).Message);
        Assert.Contains("\"a\" is given 2 times", Assert.Throws<ArgumentException>(() => GradientConflict.Measure(model, parameters, [a, a], model.Loss)).Message);
        Assert.Contains("\"b\" has no batches",
            Assert.Throws<ArgumentException>(() => GradientConflict.Measure(model, parameters, [a, new("b", [])], model.Loss)).Message);
        Assert.Contains("no parameters", Assert.Throws<ArgumentException>(() => GradientConflict.Measure(model, [], [a, new("b", [Batch([0, 1, 0], [0, 0, 0])])], model.Loss)).Message);

        model.second.weight.requires_grad = false;
        Assert.Contains("\"second.weight\" does not require gradients", Assert.Throws<ArgumentException>(() =>
            GradientConflict.Measure(model, [("second.weight", model.second.weight)], [a, new("b", [Batch([0, 1, 0], [0, 0, 0])])], model.Loss)).Message);

        var zero = new TaskBatches<(Tensor, Tensor)>("zero", [Batch([0, 0, 0], [1, 1, 1])]);   // no gradient on first
        Assert.Contains("task \"zero\" has a zero gradient", Assert.Throws<InvalidOperationException>(() => GradientConflict.Measure(model, parameters, [a, zero], model.Loss)).Message);
    }
}
