using DualLora.Adapters;
using DualLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Adapters;

public class TrainingMemoryTests
{
    [Theory]
    [InlineData("dual")]
    [InlineData("topk")]
    public void The_live_tensor_count_stays_flat_over_a_thousand_training_steps(string method)
    {
        using var outer = NewDisposeScope();
        var model = new TinyModel();
        var config = AdapterMathTests.ConfigFor(method, dropout: 0.05);
        if (config is MoeLoraConfig moe) config = moe with { AuxiliaryLossWeight = 0.01 };
        var handle = AdapterInjection.Inject(model, config);
        model.train();
        using var optimizer = new AdamWOptimizer(handle.TrainableNamedParameters().Select(p => p.Parameter), learningRate: 1e-3);
        var x = randn(16, 8);
        var target = randn(16, 8);
        var liveCounts = new List<long>();
        for (int step = 0; step < 1000; step++)
        {
            using (NewDisposeScope())
            {
                optimizer.ZeroGrad();
                var loss = nn.functional.mse_loss(model.call(x), target);
                if (handle.AuxiliaryLoss() is { } auxiliary) loss = loss + auxiliary;
                loss.backward();
                optimizer.Step();
            }
            if (step is 10 or 999) liveCounts.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        Assert.Equal(liveCounts[0], liveCounts[1]);
    }
}
