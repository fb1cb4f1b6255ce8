using System.Diagnostics;
using System.Globalization;
using DualLora.Adapters;
using DualLora.Data;
using DualLora.Multimodal;
using DualLora.Runtime;
using DualLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Cli.Benchmarks;

/// <summary>
/// <c>bench data</c>: samples/s of the data path (reading an exported scene suite's LLaVA JSON, decoding and
/// preprocessing its PNGs, tokenizing and collating batches) against the small model's training step on the
/// same batches, so it shows whether a training run ever waits on its data; and the live tensor count over
/// the data loop, which must stay flat.
/// </summary>
public static class DataBenchmark
{
    /// <summary>The ratio of data to training samples/s below which the data path could stall training.</summary>
    const double Goal = 10;
    const int WarmUpSteps = 3;
    // The suite's longest sample is far shorter, so nothing is truncated.
    const int MaxLength = 256;

    /// <summary>One measured path: how many samples and batches it went through, in how long, and the live tensors around it.</summary>
    sealed record Measurement(string Path, int Samples, int Batches, double Seconds, long LiveBefore, long LiveAfter)
    {
        public double SamplesPerSecond => Samples / Seconds;
    }

    public static void Run(RuntimeEnvironment environment, int scenes, int batchSize, int steps, TextWriter output)
    {
        TorchRuntime.EnsureLoaded();
        string folder = Directory.CreateTempSubdirectory("duallora-bench-data-").FullName;
        try
        {
            string trainingJson = Export(environment, scenes, folder);
            var config = LlavaConfig.Small();
            var preprocessing = ImagePreprocessing.ForVisionTower(config.Vision);
            string root = Path.GetDirectoryName(environment.SourceFile)!;
            var collator = InstructionCollator.For(HuggingFaceModels.LoadTokenizer(Path.Combine(root, "data", "tokenizer")), preprocessing, MaxLength);

            var (data, reading) = MeasureDataPath(trainingJson, collator, batchSize);
            var training = MeasureTraining(config, data, collator, batchSize, steps);
            Print(reading, training, scenes, batchSize, output);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Writes the suite's training split (and no other scenes) to <paramref name="folder"/>; returns its JSON file.</summary>
    static string Export(RuntimeEnvironment environment, int scenes, string folder)
    {
        using var source = FashionMnist.Load(environment, FashionMnistSplit.Test);
        var suite = SceneSuite.Build(source, new SceneSuiteOptions(TrainingScenes: scenes, ValidationScenes: 0, EvaluationScenes: 0));
        return SceneSuiteExport.Write(suite, source, folder).JsonFiles[SceneSplit.Training];
    }

    /// <summary>One pass over the file in whole batches, each disposed before the next, as a training loop would take them.</summary>
    static (LlavaInstructionData Data, Measurement Measurement) MeasureDataPath(string file, InstructionCollator collator, int batchSize)
    {
        long liveBefore = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var clock = Stopwatch.StartNew();
        var data = LlavaInstructionData.Load(file);
        int batches = data.Samples.Count / batchSize;
        if (batches == 0) throw new UsageException($"--batch {batchSize} is more than the {data.Samples.Count} samples of the exported scenes.");
        for (int batch = 0; batch < batches; batch++)
        {
            using var scope = NewDisposeScope();
            collator.Collate(data, Slice(data, batch, batchSize));
        }
        clock.Stop();
        long liveAfter = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        return (data, new Measurement("data: read + decode + collate", batches * batchSize, batches, clock.Elapsed.TotalSeconds, liveBefore, liveAfter));
    }

    /// <summary>
    /// The small model's training step through the trainer (stage 2: Dual-LoRA on its default targets and the
    /// connector, AdamW, clipping; nothing written) on the data path's batches, in order and from the start
    /// again when the steps outnumber them; collated before the clock starts.
    /// </summary>
    static Measurement MeasureTraining(LlavaConfig config, LlavaInstructionData data, InstructionCollator collator, int batchSize, int steps)
    {
        torch.manual_seed(0);
        using var model = new LlavaModel(config);
        var adapters = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 8));
        int available = data.Samples.Count / batchSize;
        using var batchesScope = NewDisposeScope();
        var batches = Enumerable.Range(0, Math.Min(available, steps + WarmUpSteps))
            .Select(batch => collator.Collate(data, Slice(data, batch, batchSize)).Batch).ToList();
        using var trainer = new Trainer<MultimodalBatch>(model, TrainingStage.AdaptersAndConnector(adapters), LlavaObjective.For(model, adapters),
            new TrainerOptions(steps + WarmUpSteps), adapters);
        long liveBefore = 0, liveAfter = 0;
        var clock = new Stopwatch();
        trainer.Progress += progress =>
        {
            if (progress.Step == WarmUpSteps) { clock.Start(); liveBefore = DisposeScopeManager.Statistics.ThreadTotalLiveCount; }
            if (progress.Step == trainer.Options.Steps) { clock.Stop(); liveAfter = DisposeScopeManager.Statistics.ThreadTotalLiveCount; }
        };
        trainer.Train(BatchSource.Of(position => batches[(int)(position % batches.Count)]));
        return new Measurement("training step (Dual-LoRA + VCE)", steps * batchSize, steps, clock.Elapsed.TotalSeconds, liveBefore, liveAfter);
    }

    static List<InstructionSample> Slice(LlavaInstructionData data, int batch, int batchSize) =>
        data.Samples.Skip(batch * batchSize).Take(batchSize).ToList();

    static void Print(Measurement data, Measurement training, int scenes, int batchSize, TextWriter output)
    {
        output.WriteLine($"The data path against the small model's training step on {torch.get_num_threads()} threads: {scenes} exported training scenes, " +
                         $"batches of {batchSize}, training through the trainer timed after {WarmUpSteps} warm-up steps (AdamW).");
        output.WriteLine($"{"path",-32} {"samples",8} {"batches",8} {"seconds",9} {"samples/s",10} {"live tensors",13}");
        // Four decimals: a small suite's data pass can take a few milliseconds on a fast machine.
        foreach (var row in new[] { data, training })
            output.WriteLine($"{row.Path,-32} {Number(row.Samples, "N0"),8} {Number(row.Batches, "N0"),8} {Number(row.Seconds, "F4"),9} " +
                             $"{Number(row.SamplesPerSecond, "N1"),10} {$"{row.LiveBefore} -> {row.LiveAfter}",13}");
        double ratio = data.SamplesPerSecond / training.SamplesPerSecond;
        output.WriteLine($"ratio data / training: {Number(ratio, "N1")}x (goal: at least {Goal:0}x on 2 cores; {(ratio >= Goal ? "met" : "not met")} here)");
    }

    static string Number(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
