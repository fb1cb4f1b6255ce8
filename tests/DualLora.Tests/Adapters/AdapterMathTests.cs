using DualLora.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Adapters;

public class AdapterMathTests
{
    public static TheoryData<string> AllMethods => new() { "lora", "dual", "dual-no-ln", "dual-no-relu", "dual-neither", "dense", "topk", "rectified" };

    internal static AdapterConfig ConfigFor(string method, double dropout = 0) => method switch
    {
        "lora" => new LoraConfig(Rank: 3, Alpha: 6, Dropout: dropout),
        "dual" => new DualLoraConfig(Rank: 3, Dropout: dropout),
        "dual-no-ln" => new DualLoraConfig(Rank: 3, Dropout: dropout, UseLayerNorm: false),
        "dual-no-relu" => new DualLoraConfig(Rank: 3, Dropout: dropout, UseRelu: false),
        "dual-neither" => new DualLoraConfig(Rank: 3, Dropout: dropout, UseLayerNorm: false, UseRelu: false),
        "dense" => new MoeLoraConfig(Routing.Dense, Experts: 3, ExpertRank: 2, Dropout: dropout),
        "topk" => new MoeLoraConfig(Routing.TopK, Experts: 3, ExpertRank: 2, TopK: 2, Dropout: dropout),
        "rectified" => new MoeLoraConfig(Routing.Rectified, Experts: 3, ExpertRank: 2, Dropout: dropout),
        _ => throw new ArgumentException(method),
    };

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void With_B_at_its_zero_init_every_adapter_returns_exactly_the_base_output(string method)
    {
        using var scope = NewDisposeScope();
        var layer = new AdaptableLinear(6, 5);
        var x = randn(4, 7, 6);
        var baseOutput = layer.call(x);
        var handle = AdapterInjection.Inject(new Holder(layer), ConfigFor(method, dropout: 0.05));
        layer.train();
        TensorAssert.BitEqual(baseOutput, layer.call(x));
        layer.eval();
        TensorAssert.BitEqual(baseOutput, layer.call(x));
        handle.Remove();
    }

    /// <summary>Wraps one layer so injection finds it under the name q_proj.</summary>
    internal sealed class Holder : nn.Module<Tensor, Tensor>
    {
        public readonly AdaptableLinear q_proj;
        public Holder(AdaptableLinear layer) : base(nameof(Holder)) { q_proj = layer; RegisterComponents(); }
        public override Tensor forward(Tensor x) => q_proj.call(x);
    }

    static void Set(TorchSharp.Modules.Parameter parameter, double[] values, params long[] shape)
    {
        using var _ = no_grad();
        parameter.copy_(tensor(values, dtype: parameter.dtype).reshape(shape));
    }

    [Fact]
    public void Dual_LoRA_matches_a_case_computed_by_hand()
    {
        // d_in = 3, d_out = 2, r = 2, alpha = 2r so scaling = 2; LayerNorm gain 1, bias 0, eps 1e-5.
        using var scope = NewDisposeScope();
        var layer = new AdaptableLinear(3, 2, dtype: ScalarType.Float64);
        Set(layer.weight, [1, 0, -1, 0.5, 2, 0], 2, 3);
        Set(layer.bias!, [0.1, -0.2], 2);
        var handle = AdapterInjection.Inject(new Holder(layer), new DualLoraConfig(Rank: 2, Dropout: 0));
        var adapter = (DualLoraAdapter)layer.Adapter!;
        Set(adapter.lora_A.weight, [1, 2, 0, 0, 1, -1], 2, 3);
        Set(adapter.lora_T.weight, [1, 0, 0, 0, -1, 0], 2, 3);
        Set(adapter.lora_B.weight, [1, 2, -1, 0.5], 2, 2);
        layer.eval();

        double[] x = [0.5, -1, 2];
        double[] baseY = [0.5 * 1 + 0 - 2 + 0.1, 0.25 - 2 + 0 - 0.2];
        double[] a = [0.5 - 2 + 0, 0 - 1 - 2];                      // A x = [-1.5, -3]
        double mean = (a[0] + a[1]) / 2, variance = ((a[0] - mean) * (a[0] - mean) + (a[1] - mean) * (a[1] - mean)) / 2;
        double[] s = a.Select(v => (v - mean) / Math.Sqrt(variance + 1e-5)).ToArray();
        double[] t = [Math.Max(0, 0.5), Math.Max(0, 1.0)];          // T x = [0.5, 1]
        double[] g = [s[0] * t[0], s[1] * t[1]];
        double[] expected = [baseY[0] + 2 * (1 * g[0] + 2 * g[1]), baseY[1] + 2 * (-1 * g[0] + 0.5 * g[1])];

        var y = layer.call(tensor(x, dtype: ScalarType.Float64)).data<double>().ToArray();
        Assert.Equal(expected[0], y[0], 12);
        Assert.Equal(expected[1], y[1], 12);
        handle.Remove();
    }

    [Fact]
    public void The_fused_and_separate_subspace_products_agree()
    {
        using var scope = NewDisposeScope();
        var layer = new AdaptableLinear(6, 4, dtype: ScalarType.Float64);
        AdapterInjection.Inject(new Holder(layer), new DualLoraConfig(Rank: 3, Dropout: 0.5));
        var adapter = (DualLoraAdapter)layer.Adapter!;
        var x = randn(5, 6, dtype: ScalarType.Float64);
        var (fusedSkill, fusedTask) = adapter.Subspaces(x, training: false);
        var separateSkill = nn.functional.layer_norm(adapter.lora_A.call(x), [3], adapter.lora_ln!.weight, adapter.lora_ln.bias, 1e-5);
        var separateTask = nn.functional.relu(adapter.lora_T.call(x));
        Assert.True(fusedSkill.allclose(separateSkill, rtol: 1e-12, atol: 1e-12));
        Assert.True(fusedTask.allclose(separateTask, rtol: 1e-12, atol: 1e-12));
    }

    [Theory]
    [MemberData(nameof(AllMethods))]
    public void Gradients_match_finite_differences_in_float64(string method)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(7);
        var layer = new AdaptableLinear(4, 3, dtype: ScalarType.Float64);
        AdapterInjection.Inject(new Holder(layer), ConfigFor(method));
        layer.train();
        using (no_grad())
            foreach (var (_, p) in layer.named_parameters()) if (p.requires_grad) p.copy_(randn_like(p) * 0.7);
        var x = randn(5, 4, dtype: ScalarType.Float64);
        var probe = randn(5, 3, dtype: ScalarType.Float64);
        Func<double> loss = () => { using var _ = no_grad(); return (layer.call(x) * probe).sum().item<double>(); };

        (layer.call(x) * probe).sum().backward();
        foreach (var (name, parameter) in layer.named_parameters().Where(p => p.parameter.requires_grad))
        {
            var analytic = parameter.grad!.reshape(-1).data<double>().ToArray();
            var flat = parameter.detach().reshape(-1);
            for (int i = 0; i < analytic.Length; i++)
            {
                const double h = 1e-6;
                double original = flat[i].item<double>();
                using (no_grad()) flat[i] = original + h;
                double up = loss();
                using (no_grad()) flat[i] = original - h;
                double down = loss();
                using (no_grad()) flat[i] = original;
                double numeric = (up - down) / (2 * h);
                Assert.True(Math.Abs(numeric - analytic[i]) <= 1e-6 * Math.Max(1, Math.Abs(numeric)),
                    $"{method} {name}[{i}]: autograd {analytic[i]}, finite difference {numeric}");
            }
        }
    }

    [Fact]
    public void Top_k_routing_leaves_exactly_k_experts_per_token_with_weights_summing_to_one()
    {
        using var scope = NewDisposeScope();
        var adapter = new MoeLoraAdapter(8, 8, new MoeLoraConfig(Routing.TopK, Experts: 5, ExpertRank: 2, TopK: 2), CPU, ScalarType.Float32);
        var weights = adapter.RoutingWeights(randn(3, 11, 8));
        Assert.Equal(new long[] { 3, 11, 5 }, weights.shape);
        Assert.True(weights.gt(0).sum(-1).eq(2).all().item<bool>());
        Assert.True(weights.sum(-1).allclose(ones(3, 11), atol: 1e-6));
    }

    [Fact]
    public void Dense_weights_are_a_softmax_and_rectified_weights_are_a_relu_of_the_router()
    {
        using var scope = NewDisposeScope();
        var x = randn(6, 8);
        var dense = new MoeLoraAdapter(8, 8, new MoeLoraConfig(Routing.Dense), CPU, ScalarType.Float32);
        Assert.True(dense.RoutingWeights(x).allclose(nn.functional.softmax(dense.lora_router.call(x), -1)));
        var rectified = new MoeLoraAdapter(8, 8, new MoeLoraConfig(Routing.Rectified), CPU, ScalarType.Float32);
        var weights = rectified.RoutingWeights(x);
        Assert.True(weights.allclose(nn.functional.relu(rectified.lora_router.call(x))));
        Assert.True(weights.eq(0).any().item<bool>(), "a ReLU router switches some experts off");
    }

    [Fact]
    public void A_closed_ReLU_gate_cuts_its_rank_off_completely()
    {
        using var scope = NewDisposeScope();
        var layer = new AdaptableLinear(4, 3, dtype: ScalarType.Float64);
        AdapterInjection.Inject(new Holder(layer), new DualLoraConfig(Rank: 2, Dropout: 0));
        var adapter = (DualLoraAdapter)layer.Adapter!;
        using (no_grad())
        {
            adapter.lora_B.weight.copy_(randn(3, 2, dtype: ScalarType.Float64));
            adapter.lora_T.weight[0] = tensor(new double[] { -1, 0, 0, 0 }, dtype: ScalarType.Float64);   // t_0 = ReLU(-x_0)
        }
        layer.eval();
        var x = tensor(new double[] { 2, 0.5, -1, 3 }, dtype: ScalarType.Float64);          // x_0 > 0: gate 0 closed
        var (_, task) = adapter.Subspaces(x);
        Assert.Equal(0.0, task[0].item<double>());

        // The output is the base plus rank 1's term alone, whatever rank 0's skill coordinate is.
        foreach (double shift in new[] { 0.0, 5.0, -3.0 })
        {
            using (no_grad()) adapter.lora_A.weight[0].add_(shift);
            var (skill, gate) = adapter.Subspaces(x);
            var rankOneOnly = nn.functional.linear(x, layer.weight, layer.bias) + adapter.Scaling * adapter.lora_B.weight[.., 1] * (skill[1] * gate[1]);
            Assert.True(layer.call(x).allclose(rankOneOnly, rtol: 1e-12, atol: 1e-12));
        }
    }

    [Fact]
    public void Auxiliary_losses_are_off_by_default_and_computed_when_on()
    {
        using var scope = NewDisposeScope();
        var x = randn(10, 8);
        var plain = new MoeLoraAdapter(8, 8, new MoeLoraConfig(Routing.TopK), CPU, ScalarType.Float32);
        plain.Delta(x, training: true);
        Assert.Null(plain.AuxiliaryLoss);

        // A zero router gives uniform probabilities 1/E and (by index order) picks experts 0 and 1 for every
        // token: shares f = [1/2, 1/2, 0, 0], so E · Σ f_i P_i = 4 · (1/2 · 1/4 + 1/2 · 1/4) = 1.
        var balanced = new MoeLoraAdapter(8, 8, new MoeLoraConfig(Routing.TopK, AuxiliaryLossWeight: 0.5), CPU, ScalarType.Float32);
        using (no_grad()) balanced.lora_router.weight.zero_();
        balanced.Delta(x, training: true);
        Assert.Equal(0.5 * 1.0, balanced.AuxiliaryLoss!.item<float>(), 5);

        var sparse = new MoeLoraAdapter(8, 8, new MoeLoraConfig(Routing.Rectified, AuxiliaryLossWeight: 2), CPU, ScalarType.Float32);
        sparse.Delta(x, training: true);
        float l1 = nn.functional.relu(sparse.lora_router.call(x)).sum(-1).mean().item<float>();
        Assert.Equal(2 * l1, sparse.AuxiliaryLoss!.item<float>(), 4);

        Assert.Throws<ArgumentException>(() => new MoeLoraConfig(Routing.Dense, AuxiliaryLossWeight: 1).Validate());
    }
}
