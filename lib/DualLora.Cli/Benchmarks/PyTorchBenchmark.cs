using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.IO;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Runtime;
using DualLora.Training;
using TorchSharp;
using static TorchSharp.torch;

using static DualLora.Cli.Benchmarks.BenchmarkMath;

namespace DualLora.Cli.Benchmarks;

/// <summary>
/// <c>bench pytorch</c>: the small vision-language model with each adapter, trained and generating in TorchSharp and in
/// its PyTorch twin (<see cref="PyTorchTwin"/>), side by side in one run. The twin loads the weights this side saved;
/// before anything is timed, logits, loss and every trainable gradient of one batch must agree within
/// <see cref="ParityTolerance"/> (relative to each tensor's largest magnitude), and greedy generation is compared token by
/// token. Then the two runtimes take turns in rounds (the first to go alternates), each timing the same bare training
/// loop (zero_grad, forward, backward, AdamW over adapters and connector, dropout on) and greedy generation with a
/// key/value cache; the table gives medians over the rounds and the median of the per-round ratios.
/// </summary>
public static class PyTorchBenchmark
{
    /// <summary>The largest relative difference allowed between the two runtimes' outputs, losses and gradients.</summary>
    public const double ParityTolerance = 1e-5;
    const int DistinctBatches = 4;
    const int WarmUpSteps = 2;

    /// <param name="Rank">The small model's adapter rank (a mixture: 4 experts sharing it).</param>
    /// <param name="Steps">Training steps per runtime per round (small model).</param>
    /// <param name="Rounds">How many times every contender takes its turn.</param>
    /// <param name="BatchSize">Samples in a training batch.</param>
    /// <param name="TextTokens">Text tokens of a training sample or prompt, the image placeholder included.</param>
    /// <param name="Prompts">Prompts generated from at once.</param>
    /// <param name="NewTokens">Tokens generated per prompt.</param>
    /// <param name="Threads">Threads of both runtimes.</param>
    /// <param name="Python">The Python that has PyTorch.</param>
    /// <param name="ParityOnly">Check parity for every contender and stop.</param>
    /// <param name="Parts">The small model, the 7B-shaped layer, or both.</param>
    /// <param name="LayerTokens">Tokens through the 7B-shaped layer.</param>
    /// <param name="LayerRank">The 7B-shaped layer's adapter rank.</param>
    public sealed record Settings(int Rank, int Steps, int Rounds, int BatchSize, int TextTokens, int Prompts, int NewTokens, int Threads,
        string Python, bool ParityOnly, Part Parts = Part.Both, int LayerTokens = 512, int LayerRank = 32);

    /// <summary>LLaMA-7B's decoder layer: width 4096, 32 heads (no grouping), SwiGLU of 11008.</summary>
    internal static LlamaConfig SevenB => new(VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 1, NumAttentionHeads: 32, NumKeyValueHeads: 32);

    /// <summary>A decoder layer's rotary tables for positions 0 to <paramref name="tokens"/> − 1 of every sequence, and its causal mask.</summary>
    internal static (Tensor Cos, Tensor Sin, Tensor Mask) CausalInputs(LlamaConfig config, int batch, int tokens)
    {
        var (cos, sin) = RotaryEmbedding.For(arange(tokens, dtype: ScalarType.Int64).unsqueeze(0).expand(batch, -1), config.HeadDim, config.RopeTheta, ScalarType.Float32);
        return (cos, sin, ones(tokens, tokens, dtype: ScalarType.Bool).tril().view(1, 1, tokens, tokens));
    }

    /// <summary>Which models run: the small model, the 7B-shaped decoder layer, or both.</summary>
    public enum Part { Both, Small, Layer }

    /// <summary>A method as both runtimes build it; no config: the base layer alone.</summary>
    public sealed record Method(string Name, AdapterConfig? Config);

    /// <summary>The worst relative differences the parity check found, and how many greedily generated tokens differed.</summary>
    public sealed record Parity(double Output, double Loss, double Gradients, string WorstGradient, int GeneratedDiffering, int Generated)
    {
        public double Worst => Math.Max(Output, Math.Max(Loss, Gradients));
    }

    /// <summary>One contender's times in both runtimes, one entry a round.</summary>
    sealed class Times
    {
        public List<double> TorchSharp { get; } = [];
        public List<double> PyTorch { get; } = [];
        public double TorchSharpMedian => Median(TorchSharp);
        public double PyTorchMedian => Median(PyTorch);
        /// <summary>The median of the per-round TorchSharp / PyTorch ratios.</summary>
        public double Ratio => Median(TorchSharp.Zip(PyTorch, (t, p) => t / p));
    }

    /// <summary>LoRA, Dual-LoRA and the three 4-expert mixtures (fused), and the dense mixture as LoRA-MoE code loops over its experts.</summary>
    public static IReadOnlyList<Method> Methods(int rank)
    {
        if (rank < 4 || rank % 4 != 0) throw new UsageException($"rank {rank} (--rank, --layer-rank): the mixtures split it over 4 experts, so it must be a multiple of 4.");
        int expert = rank / 4;
        var dense = new MoeLoraConfig(Routing.Dense, Experts: 4, ExpertRank: expert, Alpha: 2 * expert);
        return
        [
            new("LoRA", new LoraConfig(Rank: rank, Alpha: 2 * rank)),
            new("Dual-LoRA", new DualLoraConfig(Rank: rank)),
            new($"MoE dense 4x{expert}", dense),
            new($"MoE top-2 4x{expert}", dense with { Routing = Routing.TopK, TopK = 2 }),
            new($"MoE rectified 4x{expert}", dense with { Routing = Routing.Rectified }),
            new($"MoE dense 4x{expert}, looped", new LoopedMoeLoraConfig(dense)),
        ];
    }

    public static void Run(Settings settings, TextWriter output)
    {
        if (settings.TextTokens < 2) throw new UsageException($"--text {settings.TextTokens} leaves no room for a token after the image placeholder: at least 2.");
        Methods(settings.Rank);
        Methods(settings.LayerRank);
        TorchRuntime.EnsureLoaded();
        torch.set_num_threads(settings.Threads);
        string loadBefore = LoadAverage();
        using var twin = new PyTorchTwin(settings.Python, settings.Threads);
        output.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version} (BLAS: {TorchSharpBlas()}) against PyTorch {twin.TorchVersion} " +
                         $"(BLAS: {twin.Blas}), {settings.Threads} threads each; load average {loadBefore} before.");
        var ours = ProfileBenchmark.MatmulPeak();
        var theirs = twin.Ask(new JsonObject
        {
            ["op"] = "peak", ["threads"] = settings.Threads,
            ["sizes"] = new JsonArray(ProfileBenchmark.PeakSizes.Select(n => JsonValue.Create(n)).ToArray<JsonNode?>()),
        })["gflops"]!.AsObject();
        output.WriteLine("Square float32 products (median of 5), GFLOP/s TorchSharp / PyTorch: " +
                         string.Join(", ", ours.Select(p => $"n = {p.Size}: {p.GigaFlops:F0} / {theirs[p.Size.ToString(CultureInfo.InvariantCulture)]!.GetValue<double>():F0}")) + ".");
        var small = new List<SmallContender>();
        var layer = new List<LayerContender>();
        try
        {
            if (settings.Parts != Part.Layer)
            {
                SmallContender.Prepare(settings, twin, small, output);
                if (!settings.ParityOnly) TakeTurns(small, settings.Rounds, (c, round) => c.Round(round, twin, settings));
                PrintSmall(small, settings, output);
            }
            if (settings.Parts != Part.Small)
            {
                LayerContender.Prepare(settings, twin, layer, output);
                if (!settings.ParityOnly) TakeTurns(layer, settings.Rounds, (c, round) => c.Round(round, twin));
                PrintLayer(layer, settings, output);
            }
            if (!settings.ParityOnly) PrintGoals(small, layer, settings, output);
            output.WriteLine($"Load average after: {LoadAverage()}.");
        }
        finally
        {
            foreach (var c in small) c.Dispose();
            foreach (var c in layer) c.Dispose();
        }
    }

    /// <summary>Every contender in every round, the first moving on by one each round, so drift hits all alike.</summary>
    static void TakeTurns<T>(IReadOnlyList<T> contenders, int rounds, Action<T, int> run)
    {
        for (int round = 0; round < rounds; round++)
            for (int i = 0; i < contenders.Count; i++)
                run(contenders[(round + i) % contenders.Count], round);
    }

    /// <summary>The small model with one method, built alike in both runtimes, and its times.</summary>
    sealed class SmallContender : IDisposable
    {
        public required Method Method { get; init; }
        public required bool Vce { get; init; }
        public required LlavaModel Model { get; init; }
        public required TrainBenchmark.BareLoop Loop { get; init; }
        public required long Trainable { get; init; }
        public required Parity Parity { get; init; }
        public required Inputs Data { get; init; }
        public string Name => Method.Name + (Vce ? " + VCE" : "");
        public Times Train { get; } = new();
        public Times Generate { get; } = new();
        long step;

        /// <summary>The batches and prompts every contender shares, and their files for the twin.</summary>
        public sealed record Inputs(IReadOnlyList<MultimodalBatch> Batches, string BatchFile, IReadOnlyList<long[]> Prompts, Tensor Pixels, string PromptFile, long Sequence);

        public static void Prepare(Settings settings, PyTorchTwin twin, List<SmallContender> contenders, TextWriter output)
        {
            var config = LlavaConfig.Small(withVce: false);
            torch.manual_seed(1);
            var batches = Enumerable.Range(0, DistinctBatches).Select(_ => TrainBenchmark.RandomBatch(config, settings.BatchSize, settings.TextTokens)).ToList();
            var (prompts, pixels) = RandomPrompts(config, settings.Prompts, settings.TextTokens);
            string batchFile = twin.Scratch("batches.safetensors");
            SafetensorsWriter.Write(batchFile, batches.SelectMany((b, i) => new[]
            {
                Pair($"input_ids.{i}", b.InputIds), Pair($"attention_mask.{i}", b.AttentionMask), Pair($"pixels.{i}", b.Pixels), Pair($"labels.{i}", b.Labels!),
            }));
            string promptFile = twin.Scratch("prompts.safetensors");
            SafetensorsWriter.Write(promptFile, [Pair("input_ids", tensor(prompts.SelectMany(p => p).ToArray(), [prompts.Count, prompts[0].Length])), Pair("pixels", pixels)]);
            var inputs = new Inputs(batches, batchFile, prompts, pixels, promptFile, settings.TextTokens - 1 + config.Vision.NumPatches);

            foreach (bool vce in new[] { false, true })
                foreach (var method in Methods(settings.Rank))
                {
                    contenders.Add(Build(method, vce, inputs, twin, settings));
                    output.WriteLine($"  small model, {contenders[^1].Name}: parity {contenders[^1].Parity.Worst:0.0e+0}");
                }
        }

        static SmallContender Build(Method method, bool withVce, Inputs inputs, PyTorchTwin twin, Settings settings)
        {
            var config = LlavaConfig.Small(withVce);
            torch.manual_seed(0);
            var model = new LlavaModel(config);
            var adapters = AdapterInjection.Inject(model, method.Config!);
            GiveUpdatesWeight(adapters);
            var stage = TrainingStage.AdaptersAndConnector(adapters);
            var loop = new TrainBenchmark.BareLoop(model, stage, LlavaObjective.For(model, adapters));
            string name = method.Name + (withVce ? " + VCE" : "");
            try
            {
                string weights = twin.Scratch("model.safetensors");
                SafetensorsWriter.Write(weights, model.state_dict());
                var loaded = twin.Ask(new JsonObject
                {
                    ["op"] = "load", ["name"] = name, ["weights"] = weights, ["threads"] = settings.Threads,
                    ["config"] = TwinConfig(config, method.Config!, stage.Apply(model).ToDictionary(g => g.Name, g => g.LearningRate)),
                });
                long trainable = model.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
                if (loaded["trainable"]!.GetValue<long>() != trainable)
                    throw new InvalidOperationException($"{name}: the twin trains {loaded["trainable"]} parameters, TorchSharp {trainable}.");
                var parity = CheckParity(model, name, inputs, twin, settings.NewTokens);
                model.train();
                return new SmallContender { Method = method, Vce = withVce, Model = model, Loop = loop, Trainable = trainable, Parity = parity, Data = inputs };
            }
            catch
            {
                loop.Dispose();
                model.Dispose();
                throw;
            }
        }

        /// <summary>One batch's logits, loss and trainable gradients (dropout off) in both runtimes, and greedy generation from the prompts.</summary>
        static Parity CheckParity(LlavaModel model, string name, Inputs inputs, PyTorchTwin twin, int newTokens)
        {
            using var scope = NewDisposeScope();
            model.eval();
            foreach (var p in model.parameters()) p.grad = null;
            var output = model.call(inputs.Batches[0]);
            output.Loss!.backward();
            string twinFile = twin.Scratch("parity.safetensors");
            twin.Ask(new JsonObject { ["op"] = "parity", ["name"] = name, ["batch"] = inputs.BatchFile, ["out"] = twinFile });
            var (logits, loss, gradients, worst) = Compare(twinFile, output.Logits, output.Loss, model.named_parameters());
            foreach (var p in model.parameters()) p.grad = null;

            var generated = LlavaGeneration.Generate(model, inputs.Prompts, inputs.Pixels, newTokens, endOfSequence: -1);
            string generatedFile = twin.Scratch("generated.safetensors");
            twin.Ask(new JsonObject { ["op"] = "generate", ["name"] = name, ["prompts"] = inputs.PromptFile, ["new_tokens"] = newTokens, ["out"] = generatedFile });
            using var twinGenerated = SafetensorsFile.Open(generatedFile);
            var theirs = twinGenerated.ReadTensor("generated").data<long>().ToArray();
            var ours = generated.SelectMany(g => g).ToArray();
            int differing = ours.Length != theirs.Length ? Math.Max(ours.Length, theirs.Length) : ours.Zip(theirs).Count(p => p.First != p.Second);
            var parity = new Parity(logits, loss, gradients, worst, differing, theirs.Length);
            if (parity.Worst > ParityTolerance) throw ParityFailure(name, parity);
            return parity;
        }

        public void Round(int round, PyTorchTwin twin, Settings settings)
        {
            void Ours(int steps, bool timed)
            {
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < steps; i++) Loop.Step(Data.Batches[(int)(step++ % Data.Batches.Count)]);
                if (timed) Train.TorchSharp.Add(watch.Elapsed.TotalMilliseconds / steps);
                watch.Restart();
                LlavaGeneration.Generate(Model, Data.Prompts, Data.Pixels, settings.NewTokens, endOfSequence: -1);
                if (timed) Generate.TorchSharp.Add(watch.Elapsed.TotalMilliseconds);
            }
            void Theirs(int steps, bool timed)
            {
                double train = twin.Ask(new JsonObject { ["op"] = "train", ["name"] = Name, ["batches"] = Data.BatchFile, ["steps"] = steps })["ms"]!.GetValue<double>();
                double generate = twin.Ask(new JsonObject { ["op"] = "generate", ["name"] = Name, ["prompts"] = Data.PromptFile, ["new_tokens"] = settings.NewTokens })["ms"]!.GetValue<double>();
                if (!timed) return;
                Train.PyTorch.Add(train);
                Generate.PyTorch.Add(generate);
            }
            if (round == 0)
            {
                // Not counted: a model's first steps pay for allocations in both runtimes.
                Ours(WarmUpSteps, timed: false);
                Theirs(WarmUpSteps, timed: false);
            }
            if (round % 2 == 0) { Ours(settings.Steps, true); Theirs(settings.Steps, true); }
            else { Theirs(settings.Steps, true); Ours(settings.Steps, true); }
        }

        public void Dispose()
        {
            Loop.Dispose();
            Model.Dispose();
        }
    }

    /// <summary>One decoder layer of LLaMA-7B's shape with one method on q and v (or none), built alike in both runtimes, and its times.</summary>
    sealed class LayerContender : IDisposable
    {
        public required Method Method { get; init; }
        public required LlamaDecoderLayer Layer { get; init; }
        public required AdamWOptimizer? Optimizer { get; init; }
        public required long Trainable { get; init; }
        public required Parity Parity { get; init; }
        public required LayerInput Input { get; init; }
        public Times Infer { get; } = new();
        public Times Train { get; } = new();

        /// <summary>The hidden states every contender reads, its rotary tables and causal mask, and its file for the twin.</summary>
        public sealed record LayerInput(Tensor X, Tensor Cos, Tensor Sin, Tensor Mask, string File);

        public static void Prepare(Settings settings, PyTorchTwin twin, List<LayerContender> contenders, TextWriter output)
        {
            var config = SevenB;
            int tokens = settings.LayerTokens;
            torch.manual_seed(2);
            var x = randn(1, tokens, config.HiddenSize);
            string inputFile = twin.Scratch("layer-input.safetensors");
            SafetensorsWriter.Write(inputFile, [Pair("x", x)]);
            var (cos, sin, mask) = CausalInputs(config, 1, tokens);
            var input = new LayerInput(x, cos, sin, mask, inputFile);

            var methods = new List<Method> { new("base (no adapter)", null) };
            methods.AddRange(Methods(settings.LayerRank).Where(m => m.Name is "LoRA" or "Dual-LoRA" || m.Name.StartsWith("MoE dense", StringComparison.Ordinal)));
            string baseFile = twin.Scratch("layer-base.safetensors");
            foreach (var method in methods)
            {
                // The same seed gives every contender the same frozen weights, which the twin reads once.
                torch.manual_seed(0);
                var layer = new LlamaDecoderLayer(config, null);
                foreach (var p in layer.parameters()) p.requires_grad = false;
                if (contenders.Count == 0) SafetensorsWriter.Write(baseFile, layer.state_dict());
                var request = new JsonObject
                {
                    ["op"] = "layer_load", ["name"] = method.Name, ["base"] = baseFile, ["threads"] = settings.Threads,
                    ["language"] = TwinLanguage(config), ["tokens"] = tokens,
                };
                AdamWOptimizer? optimizer = null;
                if (method.Config is { } adapterConfig)
                {
                    var adapters = AdapterInjection.Inject(layer, adapterConfig);
                    GiveUpdatesWeight(adapters);
                    string adapterFile = twin.Scratch("layer-adapter.safetensors");
                    SafetensorsWriter.Write(adapterFile, adapters.AdapterNamedParameters().Select(p => Pair(p.Name, (Tensor)p.Parameter)));
                    request["adapter"] = TwinAdapter(adapterConfig);
                    request["adapter_weights"] = adapterFile;
                    optimizer = new AdamWOptimizer(adapters.AdapterNamedParameters().Select(p => p.Parameter), learningRate: 2e-4, weightDecay: 0);
                }
                long trainable = layer.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
                var loaded = twin.Ask(request);
                if (loaded["trainable"]!.GetValue<long>() != trainable)
                    throw new InvalidOperationException($"7B-shaped layer, {method.Name}: the twin trains {loaded["trainable"]} parameters, TorchSharp {trainable}.");
                var parity = CheckParity(layer, method.Name, input, twin);
                contenders.Add(new LayerContender { Method = method, Layer = layer, Optimizer = optimizer, Trainable = trainable, Parity = parity, Input = input });
                output.WriteLine($"  7B-shaped layer, {method.Name}: parity {parity.Worst:0.0e+0}");
            }
        }

        /// <summary>The layer's output and the adapters' gradients of mean(output²) (dropout off) in both runtimes.</summary>
        static Parity CheckParity(LlamaDecoderLayer layer, string name, LayerInput input, PyTorchTwin twin)
        {
            using var scope = NewDisposeScope();
            layer.eval();
            var output = layer.Forward(input.X, input.Cos, input.Sin, input.Mask, null, 0);
            if (layer.parameters().Any(p => p.requires_grad)) output.square().mean().backward();
            string twinFile = twin.Scratch("layer-parity.safetensors");
            twin.Ask(new JsonObject { ["op"] = "layer_parity", ["name"] = name, ["input"] = input.File, ["out"] = twinFile });
            var (outputs, _, gradients, worst) = Compare(twinFile, output, null, layer.named_parameters());
            foreach (var p in layer.parameters()) p.grad = null;
            var parity = new Parity(outputs, 0, gradients, worst, 0, 0);
            if (parity.Worst > ParityTolerance) throw ParityFailure("7B-shaped layer, " + name, parity);
            return parity;
        }

        /// <summary>One inference forward pass and (with an adapter) one training step in each runtime.</summary>
        public void Round(int round, PyTorchTwin twin)
        {
            void Ours()
            {
                var watch = Stopwatch.StartNew();
                using (NewDisposeScope())
                using (no_grad())
                {
                    Layer.eval();
                    Layer.Forward(Input.X, Input.Cos, Input.Sin, Input.Mask, null, 0);
                }
                Infer.TorchSharp.Add(watch.Elapsed.TotalMilliseconds);
                if (Optimizer is null) return;
                watch.Restart();
                using (NewDisposeScope())
                {
                    Layer.train();
                    Optimizer.ZeroGrad();
                    Layer.Forward(Input.X, Input.Cos, Input.Sin, Input.Mask, null, 0).square().mean().backward();
                    Optimizer.Step();
                }
                Train.TorchSharp.Add(watch.Elapsed.TotalMilliseconds);
            }
            void Theirs()
            {
                Infer.PyTorch.Add(twin.Ask(new JsonObject { ["op"] = "layer_time", ["name"] = Method.Name, ["input"] = Input.File, ["mode"] = "infer" })["ms"]!.GetValue<double>());
                if (Optimizer is null) return;
                Train.PyTorch.Add(twin.Ask(new JsonObject { ["op"] = "layer_time", ["name"] = Method.Name, ["input"] = Input.File, ["mode"] = "train" })["ms"]!.GetValue<double>());
            }
            if (round % 2 == 0) { Ours(); Theirs(); } else { Theirs(); Ours(); }
        }

        public void Dispose()
        {
            Optimizer?.Dispose();
            Layer.Dispose();
        }
    }

    /// <summary>
    /// Fresh adapters start with B = 0, so no gradient would reach A, T or a router and the parity check could not
    /// see them; small random B (and, for Dual-LoRA, a LayerNorm away from 1 and 0) give every parameter a gradient.
    /// </summary>
    static void GiveUpdatesWeight(AdapterHandle adapters)
    {
        using var _ = no_grad();
        foreach (var (name, parameter) in adapters.AdapterNamedParameters())
            if (name.Contains(".lora_B.", StringComparison.Ordinal) || name.Contains(".lora_ln.", StringComparison.Ordinal))
                parameter.add_(randn_like(parameter).mul_(0.02));
    }

    /// <summary>Our output (and loss) and trainable gradients against the twin's file: the worst relative difference of each, and the worst gradient's name.</summary>
    static (double Output, double Loss, double Gradients, string WorstGradient) Compare(string twinFile, Tensor output, Tensor? loss,
        IEnumerable<(string name, TorchSharp.Modules.Parameter parameter)> parameters)
    {
        using var twinOutputs = SafetensorsFile.Open(twinFile);
        using var scope = NewDisposeScope();
        double outputDifference = Relative(output, twinOutputs.ReadTensor(twinOutputs.Contains("logits") ? "logits" : "output"));
        double lossDifference = loss is null ? 0 : Relative(loss.reshape(1), twinOutputs.ReadTensor("loss"));
        double worst = 0;
        string worstName = "";
        foreach (var (name, parameter) in parameters.Where(p => p.parameter.requires_grad))
        {
            string key = "grad." + name;
            if (!twinOutputs.Contains(key)) throw new InvalidOperationException($"the twin returned no gradient for '{name}'.");
            double difference = Relative(parameter.grad ?? throw new InvalidOperationException($"'{name}' got no gradient in TorchSharp."), twinOutputs.ReadTensor(key));
            if (difference > worst) (worst, worstName) = (difference, name);
        }
        return (outputDifference, lossDifference, worst, worstName);
    }

    static InvalidOperationException ParityFailure(string name, Parity parity) =>
        new($"{name}: TorchSharp and the PyTorch twin differ by {parity.Worst:0.0e+0} (output {parity.Output:0.0e+0}, loss {parity.Loss:0.0e+0}, " +
            $"gradients {parity.Gradients:0.0e+0} at '{parity.WorstGradient}'), more than {ParityTolerance:0e+0}: nothing is timed.");

    /// <summary>max |a − b| / max |b|: the difference relative to the tensor's scale.</summary>
    static double Relative(Tensor ours, Tensor theirs)
    {
        using var scope = NewDisposeScope();
        if (!ours.shape.SequenceEqual(theirs.shape))
            throw new InvalidOperationException($"shapes differ: TorchSharp [{string.Join(", ", ours.shape)}], the twin [{string.Join(", ", theirs.shape)}].");
        double scale = theirs.abs().max().item<float>();
        double difference = (ours.detach() - theirs).abs().max().item<float>();
        return scale == 0 ? difference : difference / scale;
    }

    /// <summary>Prompts of <paramref name="length"/> random tokens with the image placeholder second, and their images.</summary>
    static (IReadOnlyList<long[]> Prompts, Tensor Pixels) RandomPrompts(LlavaConfig config, int count, int length)
    {
        var ids = randint(3, config.Language.VocabSize, [count, length], dtype: ScalarType.Int64);
        ids[.., 1] = LlavaConfig.ImageTokenId;
        var flat = ids.data<long>().ToArray();
        var prompts = Enumerable.Range(0, count).Select(i => flat.Skip(i * length).Take(length).ToArray()).ToList();
        return (prompts, randn(count, config.Vision.NumChannels, config.Vision.ImageSize, config.Vision.ImageSize));
    }

    static JsonObject TwinConfig(LlavaConfig config, AdapterConfig adapter, IReadOnlyDictionary<string, double> learningRates)
    {
        var v = config.Vision;
        var l = config.Language;
        JsonObject? vce = null;
        if (config.Vce is { } c)
            vce = new JsonObject
            {
                ["levels"] = new JsonArray(c.LevelsFor(v.NumHiddenLayers).Select(level => JsonValue.Create(level)).ToArray<JsonNode?>()),
                ["anchor_level"] = c.AnchorLevel, ["heads"] = c.Heads, ["points"] = c.Points, ["output_norm"] = c.OutputNorm,
            };
        return new JsonObject
        {
            ["vision"] = new JsonObject
            {
                ["hidden_size"] = v.HiddenSize, ["intermediate_size"] = v.IntermediateSize, ["num_hidden_layers"] = v.NumHiddenLayers,
                ["num_attention_heads"] = v.NumAttentionHeads, ["image_size"] = v.ImageSize, ["patch_size"] = v.PatchSize,
                ["num_channels"] = v.NumChannels, ["layer_norm_eps"] = v.LayerNormEps, ["hidden_act"] = v.HiddenAct,
            },
            ["language"] = TwinLanguage(l),
            ["vce"] = vce,
            ["select_layer"] = config.SelectLayer,
            ["adapter"] = TwinAdapter(adapter),
            ["learning_rates"] = new JsonObject(learningRates.Select(r => KeyValuePair.Create(r.Key, (JsonNode?)r.Value))),
        };
    }

    internal static JsonObject TwinLanguage(Language.LlamaConfig l) => new()
    {
        ["vocab_size"] = l.VocabSize, ["hidden_size"] = l.HiddenSize, ["intermediate_size"] = l.IntermediateSize,
        ["num_hidden_layers"] = l.NumHiddenLayers, ["num_attention_heads"] = l.NumAttentionHeads,
        ["num_key_value_heads"] = l.NumKeyValueHeads, ["rms_norm_eps"] = l.RmsNormEps, ["rope_theta"] = l.RopeTheta,
    };

    internal static JsonObject TwinAdapter(AdapterConfig config) => config switch
    {
        LoraConfig c => new JsonObject { ["kind"] = "lora", ["rank"] = c.Rank, ["scaling"] = c.Scaling, ["dropout"] = c.Dropout },
        DualLoraConfig c => new JsonObject
        {
            ["kind"] = "dual_lora", ["rank"] = c.Rank, ["scaling"] = c.Scaling, ["dropout"] = c.Dropout,
            ["use_layer_norm"] = c.UseLayerNorm, ["use_relu"] = c.UseRelu,
        },
        MoeLoraConfig c => Mixture("moe", c),
        LoopedMoeLoraConfig c => Mixture("moe_looped", c.Mixture),
        _ => throw new ArgumentException($"the twin has no {config.GetType().Name}."),
    };

    static JsonObject Mixture(string kind, MoeLoraConfig c) => new()
    {
        ["kind"] = kind, ["ranks"] = new JsonArray(c.Ranks.Select(r => JsonValue.Create(r)).ToArray<JsonNode?>()),
        ["routing"] = c.Routing switch { Routing.Dense => "dense", Routing.TopK => "top_k", _ => "rectified" },
        ["top_k"] = c.TopK, ["scaling"] = c.Scaling, ["dropout"] = c.Dropout,
    };

    static KeyValuePair<string, Tensor> Pair(string name, Tensor tensor) => KeyValuePair.Create(name, tensor);


    /// <summary>/proc/loadavg's 1-, 5- and 15-minute averages.</summary>
    internal static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    /// <summary>
    /// The BLAS this process's LibTorch multiplies with: a BLAS library it loaded, else MKL when libtorch_cpu carries it
    /// (the CPU builds of LibTorch link MKL in).
    /// </summary>
    internal static string TorchSharpBlas()
    {
        var libraries = File.ReadLines("/proc/self/maps").Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 6).Select(parts => parts[5]).Distinct().ToList();
        var blas = libraries.FirstOrDefault(l => Path.GetFileName(l).Contains("blas", StringComparison.OrdinalIgnoreCase)
                                                 || Path.GetFileName(l).StartsWith("libmkl", StringComparison.Ordinal));
        if (blas != null) return Path.GetFileName(blas);
        var torchCpu = libraries.FirstOrDefault(l => Path.GetFileName(l) == "libtorch_cpu.so");
        if (torchCpu != null && FileContains(torchCpu, "Intel(R) oneAPI Math Kernel Library"u8)) return "MKL (linked into libtorch_cpu)";
        return "unknown";
    }

    static bool FileContains(string path, ReadOnlySpan<byte> text)
    {
        using var stream = File.OpenRead(path);
        var buffer = new byte[1 << 20];
        int carry = 0, read;
        while ((read = stream.Read(buffer, carry, buffer.Length - carry)) > 0)
        {
            int length = carry + read;
            if (buffer.AsSpan(0, length).IndexOf(text) >= 0) return true;
            carry = Math.Min(text.Length - 1, length);
            buffer.AsSpan(length - carry, carry).CopyTo(buffer);
        }
        return false;
    }


    static string F(double value, string format) => double.IsNaN(value) ? "-" : value.ToString(format, CultureInfo.InvariantCulture);

    static void PrintSmall(IReadOnlyList<SmallContender> contenders, Settings settings, TextWriter output)
    {
        long sequence = contenders[0].Data.Sequence;
        output.WriteLine();
        output.WriteLine($"The small model (LlavaConfig.Small, {contenders[0].Model.parameters().Sum(p => p.numel()):N0} parameters without VCE) with each adapter at r = {settings.Rank} " +
                         "on the decoder's q and v, stage 2 (the adapters and the connector train).");
        output.WriteLine($"Parity, dropout off, one batch of {settings.BatchSize} x {sequence}: the largest difference relative to each tensor's largest magnitude " +
                         $"(at most {ParityTolerance:0e+0}), and greedy generation ({settings.Prompts} prompts x {settings.NewTokens} tokens) compared token by token.");
        if (!settings.ParityOnly)
            output.WriteLine($"Times: training {settings.Steps} steps a round (zero_grad, forward, backward, AdamW; dropout 0.05), generation greedy with a key/value cache; " +
                             $"{settings.Rounds} rounds, every contender each round in both runtimes; medians; ratio: the median of the per-round TorchSharp / PyTorch ratios.");
        output.WriteLine($"{"method",-30} {"trainable",9} {"logits",7} {"loss",7} {"grads",7} {"tokens",7}  {"train ms TS",11} {"PT",6} {"ratio",5} {"tokens/s TS",11} {"PT",6}  " +
                         $"{"gen ms TS",9} {"PT",6} {"ratio",5} {"tokens/s TS",11} {"PT",5}");
        foreach (var c in contenders)
        {
            double trainTokens = settings.BatchSize * sequence * 1000.0, generated = settings.Prompts * settings.NewTokens * 1000.0;
            output.WriteLine($"{c.Name,-30} {c.Trainable,9:N0} {c.Parity.Output,7:0.0e+0} {c.Parity.Loss,7:0.0e+0} {c.Parity.Gradients,7:0.0e+0} " +
                             $"{$"{c.Parity.Generated - c.Parity.GeneratedDiffering}/{c.Parity.Generated}",7}  " +
                             $"{F(c.Train.TorchSharpMedian, "F1"),11} {F(c.Train.PyTorchMedian, "F1"),6} {F(c.Train.Ratio, "F2"),5} " +
                             $"{F(trainTokens / c.Train.TorchSharpMedian, "N0"),11} {F(trainTokens / c.Train.PyTorchMedian, "N0"),6}  " +
                             $"{F(c.Generate.TorchSharpMedian, "F1"),9} {F(c.Generate.PyTorchMedian, "F1"),6} {F(c.Generate.Ratio, "F2"),5} " +
                             $"{F(generated / c.Generate.TorchSharpMedian, "N0"),11} {F(generated / c.Generate.PyTorchMedian, "N0"),5}");
        }
    }

    static void PrintLayer(IReadOnlyList<LayerContender> contenders, Settings settings, TextWriter output)
    {
        var config = SevenB;
        output.WriteLine();
        output.WriteLine($"One decoder layer of LLaMA-7B's shape (width {config.HiddenSize}, {config.NumAttentionHeads} heads, SwiGLU {config.IntermediateSize}; " +
                         $"{contenders[0].Layer.parameters().Sum(p => p.numel()):N0} frozen parameters) on {settings.LayerTokens} tokens, adapters at r = {settings.LayerRank} on q and v.");
        output.WriteLine("Parity, dropout off: the output and the adapters' gradients of mean(output²). Times: one forward pass without gradients (inference) and one " +
                         $"training step (forward, backward, AdamW over the adapters; dropout 0.05) per round, {settings.Rounds} rounds; medians.");
        output.WriteLine($"{"method",-30} {"trainable",9} {"output",7} {"grads",7}  {"infer ms TS",11} {"PT",7} {"ratio",5}  {"train ms TS",11} {"PT",7} {"ratio",5}");
        foreach (var c in contenders)
            output.WriteLine($"{c.Method.Name,-30} {c.Trainable,9:N0} {c.Parity.Output,7:0.0e+0} {c.Parity.Gradients,7:0.0e+0}  " +
                             $"{F(c.Infer.TorchSharpMedian, "F0"),11} {F(c.Infer.PyTorchMedian, "F0"),7} {F(c.Infer.Ratio, "F2"),5}  " +
                             $"{F(c.Train.TorchSharpMedian, "F0"),11} {F(c.Train.PyTorchMedian, "F0"),7} {F(c.Train.Ratio, "F2"),5}");
    }

    /// <summary>The median over rounds of one contender's time over another's, in one runtime.</summary>
    static double Between(List<double> numerator, List<double> denominator) => Median(numerator.Zip(denominator, (a, b) => a / b));

    /// <summary>The paper's comparisons (Dual-LoRA against LoRA and a 4-expert mixture) on whole models, and the issue's goals, as measured.</summary>
    static void PrintGoals(IReadOnlyList<SmallContender> small, IReadOnlyList<LayerContender> layer, Settings settings, TextWriter output)
    {
        output.WriteLine();
        output.WriteLine("Dual-LoRA's time over another method's (median of per-round ratios; each runtime on its own). " +
                         "The paper: 1.16x q/v LoRA and 0.73x a 4-expert LoRA-MoE in inference.");
        output.WriteLine($"{"Dual-LoRA over",-34} {"small train TS",14} {"PT",5} {"small generate TS",17} {"PT",5} {"7B layer infer TS",17} {"PT",5} {"7B layer train TS",17} {"PT",5}");
        var kinds = new (string Label, Func<AdapterConfig?, bool> Is)[]
        {
            ("LoRA", c => c is LoraConfig),
            ("MoE dense, fused (this library's)", c => c is MoeLoraConfig { Routing: Routing.Dense }),
            ("MoE dense, looped over experts", c => c is LoopedMoeLoraConfig),
        };
        SmallContender? SmallOf(Func<AdapterConfig?, bool> kind) => small.FirstOrDefault(c => !c.Vce && kind(c.Method.Config));
        LayerContender? LayerOf(Func<AdapterConfig?, bool> kind) => layer.FirstOrDefault(c => kind(c.Method.Config));
        static bool IsDual(AdapterConfig? c) => c is DualLoraConfig;
        var dualSmall = SmallOf(IsDual);
        var dualLayer = LayerOf(IsDual);
        string Ratio(List<double>? a, List<double>? b) => a is null || b is null || a.Count == 0 ? "-" : F(Between(a, b), "F2");
        foreach (var (label, kind) in kinds)
        {
            var otherSmall = SmallOf(kind);
            var otherLayer = LayerOf(kind);
            output.WriteLine($"{label,-34} {Ratio(dualSmall?.Train.TorchSharp, otherSmall?.Train.TorchSharp),14} {Ratio(dualSmall?.Train.PyTorch, otherSmall?.Train.PyTorch),5} " +
                             $"{Ratio(dualSmall?.Generate.TorchSharp, otherSmall?.Generate.TorchSharp),17} {Ratio(dualSmall?.Generate.PyTorch, otherSmall?.Generate.PyTorch),5} " +
                             $"{Ratio(dualLayer?.Infer.TorchSharp, otherLayer?.Infer.TorchSharp),17} {Ratio(dualLayer?.Infer.PyTorch, otherLayer?.Infer.PyTorch),5} " +
                             $"{Ratio(dualLayer?.Train.TorchSharp, otherLayer?.Train.TorchSharp),17} {Ratio(dualLayer?.Train.PyTorch, otherLayer?.Train.PyTorch),5}");
        }

        output.WriteLine();
        output.WriteLine("Goals, as measured:");
        if (small.Count > 0)
        {
            var worst = small.MaxBy(c => c.Train.Ratio)!;
            output.WriteLine($"- TorchSharp's training step at most 1.0x PyTorch eager: small model {F(small.Min(c => c.Train.Ratio), "F2")}x to {F(worst.Train.Ratio, "F2")}x " +
                             $"(worst: {worst.Name}) -> {(worst.Train.Ratio <= 1.0 ? "met" : "not met")}" +
                             (layer.Any(c => c.Optimizer != null) ? $"; 7B-shaped layer {F(layer.Where(c => c.Optimizer != null).Min(c => c.Train.Ratio), "F2")}x to {F(layer.Where(c => c.Optimizer != null).Max(c => c.Train.Ratio), "F2")}x." : "."));
        }
        if (dualSmall != null && SmallOf(kinds[0].Is) is { } loraSmall)
        {
            double generate = Between(dualSmall.Generate.TorchSharp, loraSmall.Generate.TorchSharp);
            string layerPart = dualLayer != null && LayerOf(kinds[0].Is) is { } loraLayer ? $", 7B-shaped layer {F(Between(dualLayer.Infer.TorchSharp, loraLayer.Infer.TorchSharp), "F2")}x" : "";
            output.WriteLine($"- Dual-LoRA at most 1.10x LoRA on whole-model inference (TorchSharp): small model's generation {F(generate, "F2")}x{layerPart} -> " +
                             $"{(generate <= 1.10 ? "met" : "not met")} on the small model.");
        }
    }
}
