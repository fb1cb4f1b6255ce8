using System.Diagnostics;
using System.Globalization;
using DualLora.Adapters;
using DualLora.Multimodal;
using DualLora.Runtime;
using DualLora.Training;
using TorchSharp;
using static TorchSharp.torch;

using static DualLora.Cli.Benchmarks.BenchmarkMath;

namespace DualLora.Cli.Benchmarks;

/// <summary>
/// <c>bench train</c>: what the <see cref="Trainer{TBatch}"/> costs on top of a bare training step, and whether
/// a long run stays flat in memory. The small model (<see cref="LlavaConfig.Small"/>, with and without VCE)
/// with Dual-LoRA on its default targets trains stage 2 (adapters and connector) on fixed random batches
/// through the trainer (cosine schedule, clipping, metrics.jsonl, checkpoints); after each round of its steps
/// a bare loop (zero_grad, forward, backward, AdamW step) takes as many steps on an identical copy of the
/// model, so machine noise hits both alike. Times are medians over the rounds.
/// </summary>
public static class TrainBenchmark
{
    /// <summary>RSS counts as flat when it ends within this share of its value after the first round.</summary>
    public const double RssTolerance = 0.05;
    /// <summary>The trainer's overhead goal over the bare step.</summary>
    const double OverheadGoal = 0.05;
    const int DistinctBatches = 4;
    const int CheckpointRepeats = 3;

    /// <param name="Steps">The trainer's optimizer steps (the bare loop takes as many).</param>
    /// <param name="BatchSize">Samples in a batch.</param>
    /// <param name="TextTokens">Text tokens of a sample, the image placeholder included.</param>
    /// <param name="CheckpointEvery">The trainer's checkpoint cadence in steps.</param>
    /// <param name="Rounds">How many times the two loops take turns.</param>
    public sealed record Settings(int Steps, int BatchSize, int TextTokens, int CheckpointEvery, int Rounds);

    /// <summary>The thread's live tensors and the process's resident memory at one point of the run.</summary>
    sealed record Memory(int Step, long LiveTensors, long ResidentBytes);

    sealed record Result(string Model, long Parameters, long Trainable, long Sequence, double BareMilliseconds, double TrainerMilliseconds,
        double Overhead, double CheckpointMilliseconds, Memory Start, Memory Middle, Memory End)
    {
        public bool Flat => Start.LiveTensors == Middle.LiveTensors && Middle.LiveTensors == End.LiveTensors
            && Math.Abs(End.ResidentBytes - Start.ResidentBytes) <= RssTolerance * Start.ResidentBytes;
    }

    public static void Run(Settings settings, TextWriter output)
    {
        if (settings.TextTokens < 2) throw new UsageException($"--text {settings.TextTokens} leaves no room for a token after the image placeholder: at least 2.");
        if (settings.Rounds > settings.Steps) throw new UsageException($"--rounds {settings.Rounds} is more than the {settings.Steps} steps (--steps): a round takes at least one step.");
        TorchRuntime.EnsureLoaded();
        var results = new[] { false, true }.Select(withVce => Measure(withVce, settings)).ToList();
        Print(results, settings, output);
    }

    static Result Measure(bool withVce, Settings settings)
    {
        var config = LlavaConfig.Small(withVce);
        torch.manual_seed(0);
        using var bareModel = new LlavaModel(config);
        var bareAdapters = AdapterInjection.Inject(bareModel, new DualLoraConfig(Rank: 8));
        torch.manual_seed(0);
        using var model = new LlavaModel(config);
        var adapters = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 8));
        string folder = Directory.CreateTempSubdirectory("duallora-bench-train-").FullName;
        using var batchesScope = NewDisposeScope();
        try
        {
            var batches = Enumerable.Range(0, DistinctBatches).Select(_ => RandomBatch(config, settings.BatchSize, settings.TextTokens)).ToList();
            MultimodalBatch At(long position) => batches[(int)(position % batches.Count)];

            var options = new TrainerOptions(settings.Steps)
            {
                Schedule = ScheduleKind.Cosine, MaxGradNorm = 1.0, OutputFolder = folder, CheckpointEvery = settings.CheckpointEvery,
            };
            using var trainer = new Trainer<MultimodalBatch>(model, TrainingStage.AdaptersAndConnector(adapters), LlavaObjective.For(model, adapters), options, adapters);
            var bare = new BareLoop(bareModel, TrainingStage.AdaptersAndConnector(bareAdapters), LlavaObjective.For(bareModel, bareAdapters));

            var trainerMilliseconds = new List<double>();
            var bareMilliseconds = new List<double>();
            var overheads = new List<double>();
            var memory = new List<Memory>();
            var clock = Stopwatch.StartNew();
            int round = 0, roundStartStep = 0;
            double roundStart = 0;
            trainer.Progress += progress =>
            {
                if (progress.Step != RoundEnd(round, settings)) return;
                int steps = progress.Step - roundStartStep;
                double trainerTime = (clock.Elapsed.TotalMilliseconds - roundStart) / steps;
                double bareStart = clock.Elapsed.TotalMilliseconds;
                for (int step = 0; step < steps; step++) bare.Step(At(roundStartStep + step));
                double bareTime = (clock.Elapsed.TotalMilliseconds - bareStart) / steps;
                trainerMilliseconds.Add(trainerTime);
                bareMilliseconds.Add(bareTime);
                overheads.Add(trainerTime / bareTime - 1);
                memory.Add(MemoryAt(progress.Step));
                round++;
                roundStartStep = progress.Step;
                roundStart = clock.Elapsed.TotalMilliseconds;
            };
            trainer.Train(BatchSource.Of(At));
            // After the last step's checkpoint.
            var end = MemoryAt(settings.Steps);
            bare.Dispose();

            var checkpointMilliseconds = Enumerable.Range(0, CheckpointRepeats).Select(_ =>
            {
                var watch = Stopwatch.StartNew();
                trainer.SaveCheckpoint();
                return watch.Elapsed.TotalMilliseconds;
            }).ToList();

            return new Result(withVce ? "Dual-LoRA + VCE" : "Dual-LoRA, plain projector",
                model.parameters().Sum(p => p.numel()), model.parameters().Where(p => p.requires_grad).Sum(p => p.numel()),
                settings.TextTokens - 1 + config.Vision.NumPatches, Median(bareMilliseconds), Median(trainerMilliseconds), Median(overheads),
                Median(checkpointMilliseconds), memory[0], memory[(memory.Count - 1) / 2], end);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The trainer's step after which round <paramref name="round"/> ends: the steps split evenly.</summary>
    static int RoundEnd(int round, Settings settings) => (int)((long)(round + 1) * settings.Steps / settings.Rounds);

    /// <summary>
    /// The training step with nothing around it: zero_grad, forward, backward and AdamW over the stage's groups,
    /// one dispose scope per step; no schedule, clipping, loss read-back, logging or checkpoints.
    /// </summary>
    internal sealed class BareLoop : IDisposable
    {
        readonly TrainingObjective<MultimodalBatch> objective;
        readonly AdamWOptimizer optimizer;

        public BareLoop(LlavaModel model, TrainingStage stage, TrainingObjective<MultimodalBatch> objective)
        {
            this.objective = objective;
            optimizer = new AdamWOptimizer(stage.Apply(model));
            model.train();
        }

        public void Step(MultimodalBatch batch)
        {
            using var scope = NewDisposeScope();
            optimizer.ZeroGrad();
            objective.Loss(batch).backward();
            optimizer.Step();
        }

        public void Dispose() => optimizer.Dispose();
    }

    static Memory MemoryAt(int step) => new(step, DisposeScopeManager.Statistics.ThreadTotalLiveCount, Environment.WorkingSet);

    /// <summary>Random pixels and tokens with the image placeholder second and the second half of the text as the answer.</summary>
    internal static MultimodalBatch RandomBatch(LlavaConfig config, int batchSize, int textTokens)
    {
        var ids = randint(3, config.Language.VocabSize, [batchSize, textTokens], dtype: ScalarType.Int64);
        ids[.., 1] = LlavaConfig.ImageTokenId;
        var labels = ids.clone();
        labels[.., ..(textTokens / 2)] = LlavaConfig.IgnoreIndex;
        var pixels = randn(batchSize, config.Vision.NumChannels, config.Vision.ImageSize, config.Vision.ImageSize);
        return new MultimodalBatch(ids, ones_like(ids), pixels, labels);
    }


    static void Print(IReadOnlyList<Result> results, Settings settings, TextWriter output)
    {
        var first = results[0];
        output.WriteLine($"Training the small model on {torch.get_num_threads()} threads, {settings.Steps} steps on {DistinctBatches} fixed random batches in turn: " +
                         "Dual-LoRA (r = 8) on the decoder's q and v and the connector (stage 2), through the trainer (AdamW, cosine schedule, " +
                         $"clipping at 1.0, metrics.jsonl, a checkpoint every {settings.CheckpointEvery} steps) and a bare loop (zero_grad, forward, " +
                         $"backward, AdamW step) on a copy of the model, taking turns in {settings.Rounds} rounds; medians over the rounds.");
        output.WriteLine($"{"model",-28} {"parameters",11} {"trainable",10} {"batch",9} {"bare ms/step",13} {"trainer ms/step",16} {"overhead",9} {"tokens/s",9} {"checkpoint ms",14}");
        foreach (var r in results)
            output.WriteLine($"{r.Model,-28} {Number(r.Parameters, "N0"),11} {Number(r.Trainable, "N0"),10} {$"{settings.BatchSize} x {r.Sequence}",9} " +
                             $"{Number(r.BareMilliseconds, "F1"),13} {Number(r.TrainerMilliseconds, "F1"),16} {Number(100 * r.Overhead, "F1") + " %",9} " +
                             $"{Number(settings.BatchSize * r.Sequence * 1000 / r.TrainerMilliseconds, "N0"),9} {Number(r.CheckpointMilliseconds, "F1"),14}");
        output.WriteLine($"overhead of the trainer: the median over the rounds of trainer / bare - 1 (goal: at most {100 * OverheadGoal:0} %; " +
                         $"{(results.All(r => r.Overhead <= OverheadGoal) ? "met" : "not met")} here); tokens/s through the trainer; " +
                         $"checkpoint ms: one checkpoint written by itself (median of {CheckpointRepeats}), also inside the trainer's times every {settings.CheckpointEvery} steps.");
        output.WriteLine();
        output.WriteLine($"Memory over the run (both loops), after steps {first.Start.Step}, {first.Middle.Step} and {first.End.Step} (the last checkpoint written); " +
                         $"flat: the same live tensors, RSS within {100 * RssTolerance:0} % of the first.");
        output.WriteLine($"{"model",-28} {"live tensors",24} {"RSS MB",24} {"flat",5}");
        foreach (var r in results)
        {
            var points = new[] { r.Start, r.Middle, r.End };
            output.WriteLine($"{r.Model,-28} {string.Join(" -> ", points.Select(p => p.LiveTensors)),24} " +
                             $"{string.Join(" -> ", points.Select(p => Number(p.ResidentBytes / 1048576.0, "F0"))),24} {(r.Flat ? "yes" : "no"),5}");
        }
    }

    static string Number(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
