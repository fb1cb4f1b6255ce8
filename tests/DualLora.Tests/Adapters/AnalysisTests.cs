using DualLora.Adapters;
using DualLora.Analysis;
using static TorchSharp.torch;

namespace DualLora.Tests.Adapters;

public class AnalysisTests
{
    [Fact]
    public void Entropy_is_log_r_for_even_activations_zero_for_one_rank_and_sign_blind()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(Math.Log(4), ActivationEntropy.Mean(ones(3, 4)), 12);
        Assert.Equal(0, ActivationEntropy.Mean(tensor(new double[] { 0, -2, 0, 0 }).reshape(1, 4)), 12);
        Assert.Equal(0, ActivationEntropy.Mean(zeros(2, 4)), 12);
        // p = (1/4, 3/4): H = −(¼ ln ¼ + ¾ ln ¾); averaged with a one-rank token (H = 0).
        double expected = -(0.25 * Math.Log(0.25) + 0.75 * Math.Log(0.75)) / 2;
        Assert.Equal(expected, ActivationEntropy.Mean(tensor(new double[] { 1, -3, 0, 5 }).reshape(2, 2)), 12);
    }

    [Fact]
    public void In_the_conflict_problem_LoRA_cannot_beat_the_best_single_linear_map_and_a_gated_adapter_can()
    {
        var options = new ConflictProblemOptions(Width: 8, Tasks: 2, TaskRank: 1, TrainSamples: 512, TestSamples: 256, Steps: 300, LearningRate: 0.02);
        using var problem = ConflictProblem.Create(options, seed: 5);
        double ceiling = problem.BestSingleLinearMapError();
        Assert.InRange(ceiling, 0.3, 1.0);                       // the tasks really conflict
        var lora = problem.Train("LoRA", new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0) { TargetModules = ["q_proj"] }, seed: 1);
        Assert.True(lora.TestError >= ceiling - 0.05, $"LoRA {lora.TestError} vs the linear ceiling {ceiling}");
        var dual = problem.Train("Dual-LoRA", new DualLoraConfig(Rank: 4, Dropout: 0, UseLayerNorm: false, UseRelu: false) { TargetModules = ["q_proj"] }, seed: 1);
        Assert.True(dual.TestError < 0.5 * ceiling, $"Dual-LoRA {dual.TestError} vs the linear ceiling {ceiling}");
        Assert.Equal(options.Tasks, dual.TaskErrors.Count);
    }
}
