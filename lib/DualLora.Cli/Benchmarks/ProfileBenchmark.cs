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
/// <c>bench profile</c>: where the small model's training step (stage 2, Dual-LoRA) spends its time. The step's matrix
/// products are counted from the model's shapes (<see cref="LlavaFlops"/>) and set against the machine's matmul peak
/// measured in the same run; the step is timed phase by phase (zero_grad, forward, backward, AdamW, the dispose scope's
/// end), the frozen tower's forward pass on its own, the fixed cost of a step from steps at several batch sizes, and the
/// step again with the tower's features cached (<see cref="TowerFeatureCache"/>). Rounds alternate the cached and
/// uncached steps, so drift hits both alike; times are medians over the rounds.
/// </summary>
public static class ProfileBenchmark
{
    internal static readonly int[] PeakSizes = [512, 1024, 2048];
    static readonly int[] FixedCostBatches = [1, 2, 4, 8];
    const int DistinctBatches = 4;

    /// <param name="Rank">Dual-LoRA's rank.</param>
    /// <param name="Steps">Steps per measurement in a round.</param>
    /// <param name="Rounds">Rounds.</param>
    /// <param name="BatchSize">Samples in a batch.</param>
    /// <param name="TextTokens">Text tokens of a sample, the image placeholder included.</param>
    public sealed record Settings(int Rank, int Steps, int Rounds, int BatchSize, int TextTokens);

    /// <summary>Milliseconds of one step's phases.</summary>
    sealed record Phases(double ZeroGrad, double Forward, double Backward, double Optimizer, double ScopeEnd)
    {
        public double Total => ZeroGrad + Forward + Backward + Optimizer + ScopeEnd;
    }

    public static void Run(Settings settings, TextWriter output)
    {
        if (settings.TextTokens < 2) throw new UsageException($"--text {settings.TextTokens} leaves no room for a token after the image placeholder: at least 2.");
        TorchRuntime.EnsureLoaded();
        var peak = MatmulPeak();
        output.WriteLine($"Matmul peak on {torch.get_num_threads()} threads (float32 n x n by n x n, median of 5): " +
                         string.Join(", ", peak.Select(p => $"n = {p.Size}: {p.GigaFlops:F1} GFLOP/s")) + $"; the peak is the best, {peak.Max(p => p.GigaFlops):F1} GFLOP/s.");
        double best = peak.Max(p => p.GigaFlops);
        double dispatch = DispatchMicroseconds();
        output.WriteLine($"One operation's own cost (adding two 1-element tensors with autograd on, in a dispose scope, {DispatchRepeats:N0} times; median of 3): {dispatch:F2} us.");
        foreach (bool vce in new[] { false, true })
            Profile(vce, settings, best, dispatch, output);
    }

    const int DispatchRepeats = 20_000;

    /// <summary>Microseconds of one operation that computes next to nothing: what every operation pays to be dispatched and tracked.</summary>
    static double DispatchMicroseconds()
    {
        using var scope = NewDisposeScope();
        var a = ones(1, requires_grad: true);
        var b = ones(1);
        var times = Enumerable.Range(0, 3).Select(round =>
        {
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < DispatchRepeats; i++)
            {
                using var inner = NewDisposeScope();
                using var sum = a + b;
            }
            return watch.Elapsed.TotalMilliseconds * 1000 / DispatchRepeats;
        }).ToList();
        return Median(times);
    }

    /// <summary>GFLOP/s of square float32 products at a few sizes, median of 5 after one warm-up each.</summary>
    internal static List<(int Size, double GigaFlops)> MatmulPeak()
    {
        var results = new List<(int, double)>();
        foreach (int n in PeakSizes)
        {
            using var scope = NewDisposeScope();
            var a = randn(n, n);
            var b = randn(n, n);
            a.matmul(b);
            var times = Enumerable.Range(0, 5).Select(_ =>
            {
                var watch = Stopwatch.StartNew();
                using var product = a.matmul(b);
                return watch.Elapsed.TotalSeconds;
            }).ToList();
            results.Add((n, 2.0 * n * n * n / Median(times) / 1e9));
        }
        return results;
    }

    static void Profile(bool withVce, Settings settings, double peakGigaFlops, double dispatchMicroseconds, TextWriter output)
    {
        var config = LlavaConfig.Small(withVce);
        var adapterConfig = new DualLoraConfig(Rank: settings.Rank);
        torch.manual_seed(0);
        using var model = new LlavaModel(config);
        var adapters = AdapterInjection.Inject(model, adapterConfig);
        using var optimizer = new AdamWOptimizer(TrainingStage.AdaptersAndConnector(adapters).Apply(model));
        var objective = LlavaObjective.For(model, adapters);
        model.train();
        using var batchScope = NewDisposeScope();
        var batches = FixedCostBatches.Append(settings.BatchSize).Distinct().ToDictionary(size => size,
            size => Enumerable.Range(0, DistinctBatches).Select(_ => TrainBenchmark.RandomBatch(config, size, settings.TextTokens)).ToList());
        var main = batches[settings.BatchSize];
        using var cache = new TowerFeatureCache(maxBytes: 1L << 30);
        long step = 0;

        Phases Step(MultimodalBatch batch)
        {
            var watch = Stopwatch.StartNew();
            double zero, forward, backward, optimize;
            var scope = NewDisposeScope();
            try
            {
                optimizer.ZeroGrad();
                zero = watch.Elapsed.TotalMilliseconds;
                var loss = objective.Loss(batch);
                forward = watch.Elapsed.TotalMilliseconds;
                loss.backward();
                backward = watch.Elapsed.TotalMilliseconds;
                optimizer.Step();
                optimize = watch.Elapsed.TotalMilliseconds;
            }
            finally
            {
                scope.Dispose();
            }
            double end = watch.Elapsed.TotalMilliseconds;
            return new Phases(zero, forward - zero, backward - forward, optimize - backward, end - optimize);
        }
        Phases Mean(IReadOnlyList<Phases> phases) => new(phases.Average(p => p.ZeroGrad), phases.Average(p => p.Forward), phases.Average(p => p.Backward),
            phases.Average(p => p.Optimizer), phases.Average(p => p.ScopeEnd));
        Phases Steps(List<MultimodalBatch> source, int count) => Mean(Enumerable.Range(0, count).Select(_ => Step(source[(int)(step++ % source.Count)])).ToList());
        double TowerAlone()
        {
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < settings.Steps; i++)
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                model.vision_tower.Encode(main[i % main.Count].Pixels);
            }
            return watch.Elapsed.TotalMilliseconds / settings.Steps;
        }

        long Created(MultimodalBatch batch)
        {
            long before = DisposeScopeManager.Statistics.CreatedInScopeCount;
            Step(batch);
            return DisposeScopeManager.Statistics.CreatedInScopeCount - before;
        }

        // Warm-up, and the cache filled with every batch's images.
        Steps(main, 2);
        model.TowerCache = cache;
        foreach (var source in batches.Values) Steps(source, DistinctBatches);
        long createdCached = Created(main[0]);
        model.TowerCache = null;
        long created = Created(main[0]), createdOne = Created(batches[1][0]);

        var plain = new List<Phases>();
        var cached = new List<Phases>();
        var tower = new List<double>();
        var fixedCost = FixedCostBatches.ToDictionary(size => size, _ => new List<double>());
        var fixedCostCached = FixedCostBatches.ToDictionary(size => size, _ => new List<double>());
        for (int round = 0; round < settings.Rounds; round++)
        {
            void Plain() => plain.Add(Steps(main, settings.Steps));
            void Cached()
            {
                model.TowerCache = cache;
                try { cached.Add(Steps(main, settings.Steps)); }
                finally { model.TowerCache = null; }
            }
            if (round % 2 == 0) { Plain(); Cached(); } else { Cached(); Plain(); }
            tower.Add(TowerAlone());
            foreach (int size in FixedCostBatches)
            {
                fixedCost[size].Add(Steps(batches[size], settings.Steps).Total);
                model.TowerCache = cache;
                try { fixedCostCached[size].Add(Steps(batches[size], settings.Steps).Total); }
                finally { model.TowerCache = null; }
            }
        }

        var flops = LlavaFlops.Stage2Step(config, adapterConfig, settings.BatchSize, settings.TextTokens);
        var p = MedianPhases(plain);
        var c = MedianPhases(cached);
        double towerMs = Median(tower);
        var ys = FixedCostBatches.Select(b => Median(fixedCost[b])).ToArray();
        var (slope, intercept) = Line(ys);
        var ysCached = FixedCostBatches.Select(b => Median(fixedCostCached[b])).ToArray();
        var (slopeCached, interceptCached) = Line(ysCached);

        string name = withVce ? "Dual-LoRA + VCE" : "Dual-LoRA, plain projector";
        output.WriteLine();
        output.WriteLine($"{name} (r = {settings.Rank}), stage 2, batch {settings.BatchSize} x {settings.TextTokens - 1 + config.Vision.NumPatches} tokens; " +
                         $"{settings.Rounds} rounds of {settings.Steps} steps; medians.");
        output.WriteLine($"Counted matrix products per step: {G(flops.Total)} GFLOP (vision tower {G(flops.VisionTower)}, connector {G(flops.Connector)}, " +
                         $"decoder {G(flops.Decoder)}, output head {G(flops.Head)}, adapters {G(flops.Adapters)}).");
        output.WriteLine($"{"step",-38} {"ms",8} {"GFLOP/s",8} {"of peak",8}");
        foreach (var (label, phases) in new[] { ("as it is", p), ("with the tower's features cached", c) })
        {
            double counted = label == "as it is" ? flops.Total : flops.Total - flops.VisionTower;
            output.WriteLine($"{label,-38} {N(phases.Total, "F1"),8} {N(counted / phases.Total / 1e6, "F1"),8} {N(100 * counted / phases.Total / 1e6 / peakGigaFlops, "F1") + " %",8}");
        }
        output.WriteLine($"{"phase",-38} {"ms",8} {"share",8} {"cached",8}");
        foreach (var (label, plainMs, cachedMs) in new[]
                 {
                     ("zero_grad", p.ZeroGrad, c.ZeroGrad), ("forward (loss included)", p.Forward, c.Forward), ("backward", p.Backward, c.Backward),
                     ("AdamW step", p.Optimizer, c.Optimizer), ("dispose scope's end", p.ScopeEnd, c.ScopeEnd),
                 })
            output.WriteLine($"{label,-38} {N(plainMs, "F1"),8} {N(100 * plainMs / p.Total, "F1") + " %",8} {N(cachedMs, "F1"),8}");
        output.WriteLine($"{"of which: the frozen tower's forward",-38} {N(towerMs, "F1"),8} {N(100 * towerMs / p.Total, "F1") + " %",8} {"0",8}");
        output.WriteLine($"Fixed cost of a step (intercept of step time against batch size over batches {string.Join(", ", FixedCostBatches)}: " +
                         $"{string.Join(", ", ys.Select(y => N(y, "F1")))} ms): {N(intercept, "F1")} ms, {N(100 * intercept / p.Total, "F0")} % of a step of {settings.BatchSize}; " +
                         $"each sample adds {N(slope, "F1")} ms. With the tower's features cached ({string.Join(", ", ysCached.Select(y => N(y, "F1")))} ms): " +
                         $"{N(interceptCached, "F1")} ms, {N(100 * interceptCached / c.Total, "F0")} % of a cached step of {settings.BatchSize}; each sample adds {N(slopeCached, "F1")} ms. " +
                         $"Tensors a step creates (each operation makes at least one): {created:N0} at batch {settings.BatchSize}, " +
                         $"{createdOne:N0} at batch 1, {createdCached:N0} with the tower cached; at {dispatchMicroseconds:F2} us each their dispatch is " +
                         $"{N(created * dispatchMicroseconds / 1000, "F1")} ms, {N(100 * created * dispatchMicroseconds / 1000 / p.Total, "F1")} % of a step. The tower cache held {cache.Images} images ({N(cache.Bytes / 1048576.0, "F1")} MB), " +
                         $"{N(100.0 * cache.Hits / Math.Max(1, cache.Hits + cache.Misses), "F1")} % of lookups hit.");
    }

    /// <summary>Least squares of step time against batch size: the intercept is what a step costs whatever its size, the slope what a sample adds.</summary>
    static (double Slope, double Intercept) Line(double[] milliseconds) =>
        BenchmarkMath.Line(FixedCostBatches.Zip(milliseconds, (b, ms) => ((double)b, ms)).ToList());

    static Phases MedianPhases(IReadOnlyList<Phases> phases) => new(Median(phases.Select(p => p.ZeroGrad)), Median(phases.Select(p => p.Forward)),
        Median(phases.Select(p => p.Backward)), Median(phases.Select(p => p.Optimizer)), Median(phases.Select(p => p.ScopeEnd)));


    static string G(double flops) => (flops / 1e9).ToString("F2", CultureInfo.InvariantCulture);
    static string N(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
