using System.Diagnostics;
using System.Globalization;
using DualLora.Adapters;
using DualLora.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Cli.Benchmarks;

/// <summary>
/// <c>bench adapters</c>: the cost of each adapter measured side by side in one run, as ratios to LoRA,
/// with the base layers alone and a merged LoRA as references for inference.
/// Two settings: one adapted layer at the paper's size (d = 4096, r = 32, 512 tokens), and a small
/// q/v-adapted stack of attention-shaped blocks. Each method runs forward only (inference, no_grad) and
/// forward + backward (training); the time is the median of the repeats after warm-up. Peak memory is
/// growth of a child process's peak resident set over one training step of that method alone (read from
/// /proc, reset with clear_refs), so it counts everything LibTorch allocates for the step.
/// </summary>
public static class AdapterBenchmark
{
    /// <summary>A method to time; with <paramref name="Merged"/> the LoRA update is folded into W0 first (inference only).</summary>
    sealed record Method(string Name, AdapterConfig? Config, bool Merged = false)
    {
        public bool Trains => Config != null && !Merged;
    }

    public sealed record Row(string Setting, string Method, long TrainableParameters, double ForwardMs, double AdapterMs, double TrainingMs, double? PeakMegabytes);

    static Method[] Methods(int rank) =>
    [
        new("LoRA", new LoraConfig(Rank: rank, Alpha: 2 * rank, Dropout: 0)),
        new("base (no adapter)", null),
        new("LoRA merged", new LoraConfig(Rank: rank, Alpha: 2 * rank, Dropout: 0), Merged: true),
        new("Dual-LoRA", new DualLoraConfig(Rank: rank, Dropout: 0)),
        new($"MoE dense 4x{rank / 4}", new MoeLoraConfig(Routing.Dense, Experts: 4, ExpertRank: rank / 4, Dropout: 0)),
        new($"MoE top-2 4x{rank / 4}", new MoeLoraConfig(Routing.TopK, Experts: 4, ExpertRank: rank / 4, TopK: 2, Dropout: 0)),
        new($"MoE rectified 4x{rank / 4}", new MoeLoraConfig(Routing.Rectified, Experts: 4, ExpertRank: rank / 4, Dropout: 0)),
    ];

    /// <summary>Blocks of q/v-adapted projections: x + o(v(x) ⊙ σ(Σ q(x) ⊙ k(x))), enough structure for a stack's cost.</summary>
    sealed class Block : nn.Module<Tensor, Tensor>
    {
        public readonly AdaptableLinear q_proj, k_proj, v_proj, o_proj;
        public Block(long width) : base(nameof(Block))
        {
            q_proj = new AdaptableLinear(width, width, hasBias: false);
            k_proj = new AdaptableLinear(width, width, hasBias: false);
            v_proj = new AdaptableLinear(width, width, hasBias: false);
            o_proj = new AdaptableLinear(width, width, hasBias: false);
            RegisterComponents();
        }
        public override Tensor forward(Tensor x) =>
            x + o_proj.call(v_proj.call(x) * nn.functional.sigmoid((q_proj.call(x) * k_proj.call(x)).mean([-1], keepdim: true)));
    }

    sealed class Stack : nn.Module<Tensor, Tensor>
    {
        public readonly TorchSharp.Modules.ModuleList<Block> layers;
        public Stack(long width, int depth) : base(nameof(Stack))
        {
            layers = nn.ModuleList(Enumerable.Range(0, depth).Select(_ => new Block(width)).ToArray());
            RegisterComponents();
        }
        public override Tensor forward(Tensor x)
        {
            foreach (var layer in layers) x = layer.call(x);
            return x;
        }
    }

    sealed class SingleLayer : nn.Module<Tensor, Tensor>
    {
        public readonly AdaptableLinear q_proj;
        public SingleLayer(long width) : base(nameof(SingleLayer)) { q_proj = new AdaptableLinear(width, width, hasBias: false); RegisterComponents(); }
        public override Tensor forward(Tensor x) => q_proj.call(x);
    }

    sealed record Setting(string Name, Func<nn.Module<Tensor, Tensor>> Build, long Width, int Rank);

    static readonly Setting[] Settings =
    [
        new("1 layer d=4096 r=32", () => new SingleLayer(4096), 4096, 32),
        new("q/v stack 6x512 r=16", () => new Stack(512, 6), 512, 16),
    ];

    /// <summary>
    /// Times every method of every setting. The methods of a setting are timed in interleaved rounds (one
    /// step of each per round), so drift in the machine's speed touches them alike; each method's peak
    /// memory comes from a child process that runs one training step of that method alone.
    /// </summary>
    public static IReadOnlyList<Row> Run(int tokens, int repeats, TextWriter log)
    {
        var rows = new List<Row>();
        for (int s = 0; s < Settings.Length; s++)
        {
            var setting = Settings[s];
            var methods = Methods(setting.Rank);
            log.WriteLine($"  {setting.Name}: timing {methods.Length} methods, {repeats} interleaved rounds ...");
            var (forward, adapterOnly, training, trainable) = Time(setting, methods, tokens, repeats);
            for (int m = 0; m < methods.Length; m++)
            {
                double? peak = methods[m].Trains && PeakMemory.OfChildStep(s, m, tokens) is long bytes ? bytes / 1048576.0 : null;
                rows.Add(new Row(setting.Name, methods[m].Name, trainable[m], forward[m], adapterOnly[m], training[m], peak));
            }
        }
        return rows;
    }

    static (double[] Forward, double[] AdapterOnly, double[] Training, long[] Trainable) Time(Setting setting, Method[] methods, int tokens, int repeats)
    {
        TorchRuntime.EnsureLoaded();
        torch.manual_seed(0);
        var models = methods.Select(_ => setting.Build()).ToArray();
        var handles = methods.Select((m, i) => Prepare(models[i], m)).ToArray();
        using var x = randn(1, tokens, setting.Width);
        var forward = methods.Select(_ => new List<double>()).ToArray();
        var adapterOnly = methods.Select(_ => new List<double>()).ToArray();
        var training = methods.Select(_ => new List<double>()).ToArray();
        for (int round = -3; round < repeats; round++)       // three rounds of warm-up
            for (int m = 0; m < methods.Length; m++)
            {
                double f = Seconds(() => Forward(models[m], x));
                double a = handles[m] is { } handle && !methods[m].Merged ? Seconds(() => AdapterPaths(handle, x)) : double.NaN;
                double t = methods[m].Trains ? Seconds(() => TrainingStep(models[m], x)) : double.NaN;
                if (round >= 0) { forward[m].Add(f); adapterOnly[m].Add(a); training[m].Add(t); }
            }
        var trainable = handles.Select(h => h?.Count().Trainable ?? 0).ToArray();
        foreach (var model in models) model.Dispose();
        return (forward.Select(MedianOf).ToArray(), adapterOnly.Select(MedianOf).ToArray(), training.Select(MedianOf).ToArray(), trainable);
    }

    static AdapterHandle? Prepare(nn.Module<Tensor, Tensor> model, Method method)
    {
        if (method.Config == null)
        {
            foreach (var p in model.parameters()) p.requires_grad = false;
            return null;
        }
        var handle = AdapterInjection.Inject(model, method.Config with { TargetModules = ["q_proj", "v_proj"] });
        using (no_grad()) foreach (var (_, p) in handle.AdapterNamedParameters()) p.normal_(0, 0.02);   // B = 0 could let a kernel skip work
        if (method.Merged) handle.Merge();
        return handle;
    }

    static void Forward(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        model.eval();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        model.call(x);
    }

    // The adapters' own work, without the base layers: Delta(x) of every adapted layer (all read a width-d input here).
    static void AdapterPaths(AdapterHandle handle, Tensor x)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (_, layer) in handle.Layers) layer.Adapter!.Delta(x, training: false);
    }

    static void TrainingStep(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        model.train();
        using var scope = NewDisposeScope();
        model.call(x).square().mean().backward();
        foreach (var p in model.parameters()) p.grad?.zero_();
    }

    /// <summary>The child side of the memory measurement: one training step of one method; prints the peak RSS growth in bytes.</summary>
    public static long MeasurePeakOfOneStep(int settingIndex, int methodIndex, int tokens)
    {
        TorchRuntime.EnsureLoaded();
        var setting = Settings[settingIndex];
        using var model = setting.Build();
        Prepare(model, Methods(setting.Rank)[methodIndex]);
        using var x = randn(1, tokens, setting.Width);
        long before = PeakMemory.ResetAndRead();
        TrainingStep(model, x);
        return (PeakMemory.Read() ?? before) - before;
    }

    static double Seconds(Action step)
    {
        var clock = Stopwatch.StartNew();
        step();
        return clock.Elapsed.TotalMilliseconds;
    }

    /// <summary>The median of the timed repeats (a method that cannot run a measurement has NaN there).</summary>
    static double MedianOf(List<double> values) => BenchmarkMath.Median(values.Where(v => !double.IsNaN(v)));

    public static void Print(IReadOnlyList<Row> rows, int tokens, TextWriter output)
    {
        output.WriteLine();
        output.WriteLine($"Adapter cost, {tokens} tokens, {torch.get_num_threads()} threads; medians over interleaved rounds; ratios to LoRA in the same setting.");
        output.WriteLine("forward: the adapted model in inference; adapter only: the adapters' Delta(x) without the base layers;");
        output.WriteLine("fwd+bwd: one training step (base frozen); peak MB: growth of a fresh process's peak RSS over one training step.");
        output.WriteLine($"{"setting",-22} {"method",-20} {"trainable",10} {"forward ms",10} {"x LoRA",6} {"adapter ms",10} {"x LoRA",6} {"fwd+bwd ms",10} {"x LoRA",6} {"peak MB",7}");
        string F(double value, string format) => double.IsNaN(value) ? "n/a" : value.ToString(format, CultureInfo.InvariantCulture);
        foreach (var group in rows.GroupBy(r => r.Setting))
        {
            var lora = group.First(r => r.Method == "LoRA");
            foreach (var row in group)
                output.WriteLine($"{row.Setting,-22} {row.Method,-20} {row.TrainableParameters,10:N0} {F(row.ForwardMs, "F2"),10} {F(row.ForwardMs / lora.ForwardMs, "F2"),6} " +
                    $"{F(row.AdapterMs, "F2"),10} {F(row.AdapterMs / lora.AdapterMs, "F2"),6} {F(row.TrainingMs, "F2"),10} {F(row.TrainingMs / lora.TrainingMs, "F2"),6} " +
                    $"{(row.PeakMegabytes is double mb ? F(mb, "F0") : "n/a"),7}");
            var dual = group.First(r => r.Method == "Dual-LoRA");
            var moe = group.Where(r => r.Method.StartsWith("MoE", StringComparison.Ordinal)).ToList();
            var merged = group.First(r => r.Method == "LoRA merged");
            var bare = group.First(r => r.Method == "base (no adapter)");
            output.WriteLine($"  LoRA merged: {F(merged.ForwardMs / bare.ForwardMs, "F2")}x the base layers alone");
            output.WriteLine($"  Dual-LoRA inference: {F(dual.ForwardMs / lora.ForwardMs, "F2")}x LoRA (paper 1.16x, goal <= 1.10x), " +
                $"{F(dual.ForwardMs / moe.Average(m => m.ForwardMs), "F2")}x the mean 4-expert MoE (paper 0.73x, goal <= 0.60x); " +
                $"adapter only: {F(dual.AdapterMs / lora.AdapterMs, "F2")}x LoRA, {F(dual.AdapterMs / moe.Average(m => m.AdapterMs), "F2")}x the mean MoE");
        }
    }
}

/// <summary>The process's peak resident set (VmHWM), which Linux lets a process reset by writing 5 to clear_refs.</summary>
static class PeakMemory
{
    public static long ResetAndRead()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
        // After the reset the peak equals the current resident set.
        return Read() ?? -1;
    }

    /// <summary>Runs <c>bench adapter-peak</c> in a child process, so no other method's allocations are counted.</summary>
    public static long? OfChildStep(int setting, int method, int tokens)
    {
        var start = CliProcess.StartInfo("bench", "adapter-peak", $"{setting}", $"{method}", $"{tokens}");
        start.RedirectStandardOutput = start.RedirectStandardError = true;
        using var child = Process.Start(start)!;
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        return child.ExitCode == 0 && long.TryParse(output.Trim(), out long bytes) && bytes >= 0 ? bytes : null;
    }

    public static long? Read()
    {
        if (!File.Exists("/proc/self/status")) return null;
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line == null ? null : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }
}
