using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Runtime;
using DualLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Cli.Benchmarks;

/// <summary>
/// <c>bench memory</c>: what training holds in memory. Each measurement runs in a child process of its own, so its peak
/// resident set (VmHWM) counts nothing else: every method trains the small model (stage 2, with VCE) for many steps, its
/// live tensors and RSS read at three points and its AdamW state counted against its trainable parameters; the
/// Dual-LoRA model's peak over a few steps at several batch sizes gives its bytes per sample, from which the largest
/// batch in 24 GiB is computed; one decoder layer of LLaMA-7B's shape at two batch sizes gives a layer's activation
/// bytes per sample, from which a 32-layer stack's largest batch is computed.
/// </summary>
public static class MemoryBenchmark
{
    /// <summary>The memory the largest batches are computed for.</summary>
    public const long Budget = 24L << 30;
    /// <summary>RSS counts as flat when it ends within this share of its value at the first point.</summary>
    const double RssTolerance = 0.05;
    static readonly int[] ProbeBatches = [4, 8, 16, 32];
    const int ProbeSteps = 3;
    const int SevenBLayers = 32;

    /// <param name="Steps">Training steps of each method's long run.</param>
    /// <param name="BatchSize">Samples in a batch of the long runs.</param>
    /// <param name="TextTokens">Text tokens of a sample, the image placeholder included.</param>
    /// <param name="Rank">The small model's adapter rank.</param>
    /// <param name="LayerTokens">Tokens of a sample through the 7B-shaped layer.</param>
    /// <param name="LayerRank">The 7B-shaped layer's adapter rank.</param>
    public sealed record Settings(int Steps, int BatchSize, int TextTokens, int Rank, int LayerTokens, int LayerRank);

    public static void Run(Settings settings, TextWriter output)
    {
        var methods = PyTorchBenchmark.Methods(settings.Rank);
        PyTorchBenchmark.Methods(settings.LayerRank);
        if (settings.Steps < 3) throw new UsageException($"--steps {settings.Steps}: memory is read at three points, so at least 3 steps.");
        var runs = methods.Select((method, index) =>
        {
            var run = Child("memory-run", index, settings.Steps, settings.BatchSize, settings.TextTokens, settings.Rank);
            output.WriteLine($"  {method.Name}: {run["points"]!.AsArray().Count} points read");
            return (method, run);
        }).ToList();
        int dual = methods.ToList().FindIndex(m => m.Config is DualLoraConfig);
        var probes = ProbeBatches.Select(batch => (batch, peak: Child("memory-run", dual, ProbeSteps, batch, settings.TextTokens, settings.Rank)["peak"]!.GetValue<long>())).ToList();
        var layerMethods = new[] { methods.First(m => m.Config is LoraConfig), methods[dual] };
        var layers = layerMethods.Select(method => (method, points: new[] { 1, 2 }
            .Select(batch => Child("memory-layer", methods.ToList().IndexOf(method), 1, batch, settings.LayerTokens, settings.LayerRank)).ToList())).ToList();

        output.WriteLine();
        output.WriteLine($"The small model with VCE, stage 2, each method at r = {settings.Rank} on the decoder's q and v, {settings.Steps} steps of " +
                         $"{settings.BatchSize} x {settings.TextTokens} text tokens (zero_grad, forward, backward, AdamW; a dispose scope per step), each in a fresh process.");
        output.WriteLine($"Live tensors and RSS after steps {string.Join(", ", runs[0].run["points"]!.AsArray().Select(p => p!["step"]!.GetValue<int>()))}; " +
                         $"flat: the same live tensors and RSS within {100 * RssTolerance:0} % of the first; peak: the process's peak RSS; optimizer: AdamW's moments.");
        output.WriteLine($"{"method",-26} {"trainable",9} {"optimizer bytes",15} {"per param",9} {"live tensors",22} {"RSS MB",22} {"peak MB",8} {"flat",4}");
        foreach (var (method, run) in runs)
        {
            var points = run["points"]!.AsArray().Select(p => (Live: p!["live"]!.GetValue<long>(), Rss: p["rss"]!.GetValue<long>())).ToList();
            bool flat = points.All(p => p.Live == points[0].Live) && Math.Abs(points[^1].Rss - points[0].Rss) <= RssTolerance * points[0].Rss;
            long trainable = run["trainable"]!.GetValue<long>(), optimizer = run["optimizer_bytes"]!.GetValue<long>();
            output.WriteLine($"{method.Name,-26} {trainable,9:N0} {optimizer,15:N0} {N((double)optimizer / trainable, "F1"),9} " +
                             $"{string.Join(" -> ", points.Select(p => p.Live)),22} {string.Join(" -> ", points.Select(p => N(p.Rss / 1048576.0, "F0"))),22} " +
                             $"{N(run["peak"]!.GetValue<long>() / 1048576.0, "F0"),8} {(flat ? "yes" : "no"),4}");
        }

        var (perSample, fixedBytes) = BenchmarkMath.Line(probes.Select(p => ((double)p.batch, (double)p.peak)).ToList());
        output.WriteLine();
        output.WriteLine($"Largest batch in {Budget >> 30} GiB, computed: the Dual-LoRA + VCE model's peak RSS over {ProbeSteps} steps, measured at batches " +
                         $"{string.Join(", ", probes.Select(p => $"{p.batch}: {N(p.peak / 1048576.0, "F0")} MB"))}, is {N(fixedBytes / 1048576.0, "F0")} MB " +
                         $"+ {N(perSample / 1048576.0, "F2")} MB a sample of {settings.TextTokens - 1 + LlavaConfig.Small().Vision.NumPatches} tokens, " +
                         $"so about {N(Math.Floor((Budget - fixedBytes) / perSample), "N0")} samples fit.");
        var config = PyTorchBenchmark.SevenB;
        foreach (var (method, points) in layers)
        {
            var one = points[0];
            double weights = one["weights"]!.GetValue<long>();
            double activation = points[1]["growth"]!.GetValue<long>() - one["growth"]!.GetValue<long>();   // a second sample's bytes in one layer
            double stackWeights = SevenBLayers * weights;
            double halfWeights = stackWeights / 2, halfActivation = SevenBLayers * activation / 2;
            output.WriteLine($"A {SevenBLayers}-layer stack of LLaMA-7B's layers (width {config.HiddenSize}, {settings.LayerTokens} tokens a sample) with {method.Name} at r = {settings.LayerRank}, " +
                             $"computed from one layer measured in float32 (weights {N(weights / 1048576.0, "F0")} MB; a training step's peak above them " +
                             $"{N(one["growth"]!.GetValue<long>() / 1048576.0, "F0")} MB at batch 1, {N(points[1]["growth"]!.GetValue<long>() / 1048576.0, "F0")} MB at 2): " +
                             $"in float32 the weights alone take {N(stackWeights / (1L << 30), "F1")} GiB" +
                             (stackWeights >= Budget ? $", more than {Budget >> 30} GiB, so no batch fits;" : $", leaving room for {Samples((Budget - stackWeights) / (SevenBLayers * activation))};") +
                             $" in bfloat16 (every tensor assumed half the bytes) {N(halfWeights / (1L << 30), "F1")} GiB of weights leave room for " +
                             $"{Samples((Budget - halfWeights) / halfActivation)} (a lower bound: each layer's whole training-step peak is counted for every layer; " +
                             $"embeddings, head and the optimizer's state of {N(2.0 * 4 * one["trainable"]!.GetValue<long>() * SevenBLayers / 1048576.0, "F0")} MB not counted).");
        }
    }

    static JsonObject Child(string mode, int method, int steps, int batch, int tokens, int rank)
    {
        var start = CliProcess.StartInfo("bench", mode, Text(method), Text(steps), Text(batch), Text(tokens), Text(rank));
        start.RedirectStandardOutput = start.RedirectStandardError = true;
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"bench {mode} did not start.");
        var error = child.StandardError.ReadToEndAsync();
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0)
            throw new InvalidOperationException($"bench {mode} {method} {steps} {batch} {tokens} {rank} failed (exit {child.ExitCode}): {error.Result}");
        return JsonNode.Parse(output.Trim().Split('\n')[^1])!.AsObject();
    }

    static string Samples(double room)
    {
        double count = Math.Max(0, Math.Floor(room));
        return count == 1 ? "1 sample" : $"{N(count, "N0")} samples";
    }

    static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
    static string N(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>
    /// The child of a long run: the small model with VCE and method <paramref name="methodIndex"/> of
    /// <see cref="PyTorchBenchmark.Methods"/>, <paramref name="steps"/> steps; one JSON line.
    /// </summary>
    public static string RunSmall(int methodIndex, int steps, int batch, int textTokens, int rank)
    {
        TorchRuntime.EnsureLoaded();
        var method = PyTorchBenchmark.Methods(rank)[methodIndex];
        var config = LlavaConfig.Small(withVce: true);
        torch.manual_seed(0);
        using var model = new LlavaModel(config);
        var adapters = AdapterInjection.Inject(model, method.Config!);
        using var optimizer = new AdamWOptimizer(TrainingStage.AdaptersAndConnector(adapters).Apply(model));
        var objective = LlavaObjective.For(model, adapters);
        model.train();
        using var batchScope = NewDisposeScope();
        var batches = Enumerable.Range(0, 4).Select(_ => TrainBenchmark.RandomBatch(config, batch, textTokens)).ToList();
        var readAt = new[] { Math.Max(1, steps / 10), Math.Max(2, steps / 2), steps };
        var points = new JsonArray();
        PeakMemory.ResetAndRead();
        for (int step = 1; step <= steps; step++)
        {
            using (NewDisposeScope())
            {
                optimizer.ZeroGrad();
                objective.Loss(batches[step % batches.Count]).backward();
                optimizer.Step();
            }
            if (readAt.Contains(step))
                points.Add(new JsonObject { ["step"] = step, ["live"] = DisposeScopeManager.Statistics.ThreadTotalLiveCount, ["rss"] = Environment.WorkingSet });
        }
        long optimizerBytes = optimizer.StateTensors().Sum(t => t.Value.NumberOfElements * t.Value.ElementSize);
        return new JsonObject
        {
            ["trainable"] = model.parameters().Where(p => p.requires_grad).Sum(p => p.numel()),
            ["optimizer_bytes"] = optimizerBytes, ["points"] = points, ["peak"] = PeakMemory.Read() ?? -1,
        }.ToJsonString();
    }

    /// <summary>
    /// The child of a 7B-shaped layer: its frozen weights' bytes and how far one training step (forward, backward,
    /// AdamW over the adapters) raises the peak RSS above the resident set before it; one JSON line.
    /// </summary>
    public static string RunLayer(int methodIndex, int batch, int tokens, int rank)
    {
        TorchRuntime.EnsureLoaded();
        var method = PyTorchBenchmark.Methods(rank)[methodIndex];
        var config = PyTorchBenchmark.SevenB;
        torch.manual_seed(0);
        using var layer = new LlamaDecoderLayer(config, null);
        foreach (var p in layer.parameters()) p.requires_grad = false;
        long weights = layer.parameters().Sum(p => p.numel() * p.ElementSize);
        var adapters = AdapterInjection.Inject(layer, method.Config!);
        using var optimizer = new AdamWOptimizer(adapters.AdapterNamedParameters().Select(p => p.Parameter), learningRate: 2e-4, weightDecay: 0);
        using var scope = NewDisposeScope();
        var x = randn(batch, tokens, config.HiddenSize);
        var (cos, sin, mask) = PyTorchBenchmark.CausalInputs(config, batch, tokens);
        long before = PeakMemory.ResetAndRead();
        layer.train();
        using (NewDisposeScope())
        {
            optimizer.ZeroGrad();
            layer.Forward(x, cos, sin, mask, null, 0).square().mean().backward();
            optimizer.Step();
        }
        long growth = (PeakMemory.Read() ?? before) - before;
        return new JsonObject
        {
            ["weights"] = weights, ["growth"] = growth, ["trainable"] = layer.parameters().Where(p => p.requires_grad).Sum(p => p.numel()),
        }.ToJsonString();
    }
}
