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
        var x = randn(16, 8);
        var target = randn(16, 8);
        var objective = new TrainingObjective<int>(_ =>
        {
            var loss = nn.functional.mse_loss(model.call(x), target);
            return handle.AuxiliaryLoss() is { } auxiliary ? loss + auxiliary : loss;
        });
        using var trainer = new Trainer<int>(model, TrainingStage.AdaptersOnly(handle, 1e-3), objective, new TrainerOptions(1000) { Seed = 0 }, handle);
        var liveCounts = new List<long>();
        trainer.Progress += p => { if (p.Step is 11 or 1000) liveCounts.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount); };
        trainer.Train(BatchSource.Of(position => 0));
        Assert.Equal(liveCounts[0], liveCounts[1]);
    }
}
