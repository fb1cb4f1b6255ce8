using System.Diagnostics;
using System.Globalization;
using DualLora.Adapters;
using DualLora.Multimodal;
using DualLora.Runtime;
using DualLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Cli.Benchmarks;

/// <summary>
/// <c>bench model</c>: training throughput of the small default model (<see cref="LlavaConfig.Small"/>) with
/// Dual-LoRA on the decoder's q and v and the connector trainable, on random images and tokens; and the live
/// tensor count over the steps, which must stay flat.
/// </summary>
public static class ModelBenchmark
{
    public static void Run(int steps, int batchSize, int textTokens, TextWriter output)
    {
        TorchRuntime.EnsureLoaded();
        var table = new List<string[]>();
        foreach (bool withVce in new[] { false, true })
        {
            torch.manual_seed(0);
            var config = LlavaConfig.Small(withVce);
            using var model = new LlavaModel(config);
            var handle = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 8) { TargetRegex = LlavaModel.DecoderQueryValue, ModulesToSave = ["connector"] });
            using var optimizer = new AdamWOptimizer(handle.TrainableNamedParameters().Select(p => p.Parameter), learningRate: 1e-3);
            var batch = RandomBatch(config, batchSize, textTokens);
            long sequence = textTokens - 1 + config.Vision.NumPatches;
            model.train();
            long liveAfterWarmUp = 0;
            var clock = new Stopwatch();
            for (int step = 0; step < steps + 3; step++)
            {
                if (step == 3) { clock.Start(); liveAfterWarmUp = DisposeScopeManager.Statistics.ThreadTotalLiveCount; }
                using var scope = NewDisposeScope();
                optimizer.ZeroGrad();
                model.call(batch).Loss!.backward();
                optimizer.Step();
            }
            clock.Stop();
            long liveAtEnd = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            double seconds = clock.Elapsed.TotalSeconds;
            var count = handle.Count();
            table.Add([withVce ? "Dual-LoRA + VCE" : "Dual-LoRA, plain projector", model.parameters().Sum(p => p.numel()).ToString("N0", CultureInfo.InvariantCulture),
                count.Trainable.ToString("N0", CultureInfo.InvariantCulture), $"{batchSize} x {sequence}",
                (steps * batchSize * sequence / seconds).ToString("N0", CultureInfo.InvariantCulture),
                (1000 * seconds / steps).ToString("F1", CultureInfo.InvariantCulture), $"{liveAfterWarmUp} -> {liveAtEnd}"]);
            foreach (var tensor in new[] { batch.InputIds, batch.AttentionMask, batch.Pixels, batch.Labels! }) tensor.Dispose();
        }
        output.WriteLine($"Training the small model on {torch.get_num_threads()} threads, {steps} steps after 3 warm-up steps (AdamW; random data).");
        output.WriteLine($"{"model",-28} {"parameters",11} {"trainable",10} {"batch",9} {"tokens/s",9} {"ms/step",8} {"live tensors",13}");
        foreach (var row in table) output.WriteLine($"{row[0],-28} {row[1],11} {row[2],10} {row[3],9} {row[4],9} {row[5],8} {row[6],13}");
    }

    /// <summary>Random pixels and tokens with the image placeholder second and the second half of the text as the answer.</summary>
    static MultimodalBatch RandomBatch(LlavaConfig config, int batchSize, int textTokens)
    {
        var ids = randint(3, config.Language.VocabSize, [batchSize, textTokens], dtype: ScalarType.Int64);
        ids[.., 1] = LlavaConfig.ImageTokenId;
        var labels = ids.clone();
        labels[.., ..(textTokens / 2)] = LlavaConfig.IgnoreIndex;
        var pixels = randn(batchSize, config.Vision.NumChannels, config.Vision.ImageSize, config.Vision.ImageSize);
        return new MultimodalBatch(ids, ones_like(ids), pixels, labels);
    }
}
