using DualLora.Adapters;
using DualLora.Cli.Benchmarks;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Cli;

public class PyTorchBenchmarkTests
{
    [Theory]
    [InlineData(Routing.Dense)]
    [InlineData(Routing.TopK)]
    [InlineData(Routing.Rectified)]
    public void The_looped_mixture_computes_the_fused_mixtures_update_and_input_gradient(Routing routing)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(3);
        // Unequal expert ranks, so a wrong slice of A or B would show.
        var config = new MoeLoraConfig(routing, Experts: 3, ExpertRank: 3, TopK: 2, Dropout: 0, ExpertRanks: [3, 2, 1]);
        var fused = new MoeLoraAdapter(6, 5, config, CPU, ScalarType.Float64);
        using (no_grad()) fused.lora_B.weight.normal_(0, 0.5);
        var looped = new LoopedMoeLoraAdapter(6, 5, config, CPU, ScalarType.Float64);
        looped.CopyFrom(fused);

        var x = randn(4, 7, 6, dtype: ScalarType.Float64).requires_grad_();
        var expected = fused.Delta(x, training: false);
        var expectedGradient = autograd.grad([expected.square().sum()], [x])[0];
        var actual = looped.Delta(x, training: false);
        var actualGradient = autograd.grad([actual.square().sum()], [x])[0];

        Assert.True(expected.abs().max().item<double>() > 0.1, "the update is not trivially zero");
        Assert.True(torch.allclose(expected, actual, rtol: 1e-12, atol: 1e-12), $"largest difference {(expected - actual).abs().max().item<double>()}");
        Assert.True(torch.allclose(expectedGradient, actualGradient, rtol: 1e-12, atol: 1e-12));
    }

    [Fact]
    public void The_looped_mixture_has_one_module_pair_per_expert_and_the_fused_parameter_count()
    {
        var config = new MoeLoraConfig(Routing.Dense, Experts: 4, ExpertRank: 2);
        var looped = new LoopedMoeLoraAdapter(10, 7, config, CPU, ScalarType.Float32);
        var names = looped.named_parameters().Select(p => p.name).ToList();
        Assert.Equal(["lora_A.0.weight", "lora_A.1.weight", "lora_A.2.weight", "lora_A.3.weight",
                      "lora_B.0.weight", "lora_B.1.weight", "lora_B.2.weight", "lora_B.3.weight", "lora_router.weight"], names.Order(StringComparer.Ordinal));
        Assert.Equal(config.ParameterCount(10, 7), looped.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void A_rank_the_four_experts_cannot_share_is_a_usage_error_before_anything_starts()
    {
        var (exit, _, error) = CommandLine.Run("bench", "pytorch", "--rank", "6", "--python", "/nonexistent/python3");
        Assert.Equal(2, exit);
        Assert.Contains("rank 6", error);
        Assert.Contains("multiple of 4", error);
    }

    [Fact]
    public void An_unknown_part_is_a_usage_error_naming_the_choices()
    {
        var (exit, _, error) = CommandLine.Run("bench", "pytorch", "--part", "both");
        Assert.Equal(2, exit);
        Assert.Contains("--part 'both'", error);
        Assert.Contains("small or layer", error);
    }

    [Fact]
    public void A_python_that_cannot_start_is_a_usage_error_that_says_what_to_install()
    {
        var (exit, _, error) = CommandLine.Run("bench", "pytorch", "--parity", "--python", "/nonexistent/python3");
        Assert.Equal(2, exit);
        Assert.Contains("/nonexistent/python3", error);
        Assert.Contains("python3-torch", error);
    }
}
