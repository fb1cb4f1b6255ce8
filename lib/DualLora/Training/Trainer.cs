using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Training;

/// <summary>What a batch costs: its loss (a scalar to minimise, auxiliary losses included) and, for throughput, its token count.</summary>
public sealed record TrainingObjective<TBatch>(Func<TBatch, Tensor> Loss, Func<TBatch, long>? Tokens = null);

/// <summary>
/// Trains one stage of a model: AdamW over the stage's parameter groups, the learning rate scheduled per
/// optimizer step (warm-up, then cosine or constant), gradients accumulated over micro-batches and clipped by
/// their global norm, one dispose scope per step. With an output folder it appends a JSON line per step to
/// <c>metrics.jsonl</c> and writes checkpoints (<see cref="TrainingCheckpoint"/>) every N steps and at the
/// end; <see cref="ResumeFromLatest"/> continues from the newest one exactly as if the run had not stopped
/// (bit for bit on a CPU). A loss or gradient that is NaN or infinite stops training with
/// <see cref="TrainingDivergedException"/> before the weights change, and the last good checkpoint stays.
/// </summary>
public sealed class Trainer<TBatch> : IDisposable
{

    readonly nn.Module model;
    readonly TrainingObjective<TBatch> objective;
    readonly AdapterHandle? adapters;
    readonly IReadOnlyList<(string Name, Parameter Parameter)> trainable;
    readonly HashSet<string> adapterNames;
    readonly AdamWOptimizer optimizer;
    readonly LearningRateSchedule schedule;
    readonly List<TrainingProgress> history = [];
    double elapsedBefore;
    bool resumed;

    public TrainingStage Stage { get; }
    public TrainerOptions Options { get; }
    /// <summary>Optimizer steps done.</summary>
    public int Step { get; private set; }
    /// <summary>Micro-batches drawn so far: the position of the next batch.</summary>
    public long DataPosition => (long)Step * Options.GradientAccumulation;
    public IReadOnlyList<TrainingProgress> History => history;
    public AdamWOptimizer Optimizer => optimizer;
    public string? LastCheckpoint { get; private set; }

    /// <summary>Called after every optimizer step.</summary>
    public event Action<TrainingProgress>? Progress;

    /// <param name="model">The model; the stage decides which of its parameters train.</param>
    /// <param name="stage">The groups that train and their learning rates.</param>
    /// <param name="objective">The loss of a batch.</param>
    /// <param name="options">Steps, schedule, clipping, accumulation, checkpoints.</param>
    /// <param name="adapters">The injected adapters, saved in PEFT's layout with each checkpoint.</param>
    public Trainer(nn.Module model, TrainingStage stage, TrainingObjective<TBatch> objective, TrainerOptions options, AdapterHandle? adapters = null)
    {
        options.Validate();
        this.model = model;
        this.objective = objective;
        this.adapters = adapters;
        Stage = stage;
        Options = options;
        var groups = stage.Apply(model);
        trainable = groups.SelectMany(g => g.Parameters).ToList();
        adapterNames = adapters?.AdapterNamedParameters().Select(p => p.Name).ToHashSet(StringComparer.Ordinal) ?? [];
        optimizer = new AdamWOptimizer(groups);
        schedule = new LearningRateSchedule(options.Schedule, options.Steps, options.WarmupRatio);
    }

    /// <summary>
    /// Continues from the newest checkpoint in the output folder, if there is one; returns its folder, or null
    /// when there is none (training then starts from step 0).
    /// </summary>
    public string? ResumeFromLatest()
    {
        if (Options.OutputFolder is null) throw new InvalidOperationException("resuming needs an output folder (TrainerOptions.OutputFolder).");
        string? latest = TrainingCheckpoint.Latest(Options.OutputFolder);
        if (latest != null) Resume(latest);
        return latest;
    }

    /// <summary>
    /// Restores a checkpoint of this stage: weights, optimizer state, schedule and data position, random state.
    /// A checkpoint of another model, stage, method or rank is refused with everything that does not fit.
    /// </summary>
    public void Resume(string checkpoint)
    {
        var saved = TrainingCheckpoint.ReadState(checkpoint);
        var differences = TrainingCheckpoint.Differences(saved, CurrentState());
        if (differences.Count > 0)
            throw new InvalidFileException(checkpoint, $"does not fit this run:\n  {string.Join("\n  ", differences)}");

        using (var weights = SafetensorsCheckpoint.Open(Path.Combine(checkpoint, TrainingCheckpoint.TrainableFile)))
            StrictWeights.Load(trainable.Where(p => !adapterNames.Contains(p.Name)).Select(p => (p.Name, (Tensor)p.Parameter)), weights, key => key);
        if (adapters != null) AdapterFiles.LoadWeights(adapters, Path.Combine(checkpoint, TrainingCheckpoint.AdapterFolder));
        using (var moments = SafetensorsFile.Open(Path.Combine(checkpoint, TrainingCheckpoint.OptimizerFile)))
            optimizer.LoadState(saved.OptimizerSteps, key => moments.ReadTensor(key), moments.Path);
        using (var random = SafetensorsFile.Open(Path.Combine(checkpoint, TrainingCheckpoint.RandomStateFile)))
        using (var state = random.ReadTensor("cpu"))
            TorchSharp.torch.random.set_rng_state(state);

        Step = saved.Step;
        elapsedBefore = saved.ElapsedSeconds;
        LastCheckpoint = checkpoint;
        resumed = true;
        if (Options.OutputFolder != null) KeepMetricsUpTo(Path.Combine(Options.OutputFolder, TrainingMetrics.FileName), Step);
    }

    /// <summary>Trains until <see cref="TrainerOptions.Steps"/> optimizer steps are done and returns their records.</summary>
    public IReadOnlyList<TrainingProgress> Train(IBatchSource<TBatch> batches, CancellationToken cancellation = default)
    {
        if (!resumed && Step == 0 && Options.Seed is long seed) manual_seed(seed);
        StreamWriter? metrics = null;
        if (Options.OutputFolder != null)
        {
            Directory.CreateDirectory(Options.OutputFolder);
            metrics = new StreamWriter(Path.Combine(Options.OutputFolder, TrainingMetrics.FileName), append: true) { AutoFlush = true };
        }
        var clock = Stopwatch.StartNew();
        var pace = new Queue<(double Seconds, int Step)>();
        model.train();
        try
        {
            while (Step < Options.Steps)
            {
                cancellation.ThrowIfCancellationRequested();
                var record = TrainStep(batches, clock, pace);
                history.Add(record);
                metrics?.WriteLine(TrainingMetrics.Line(record));
                Progress?.Invoke(record);
                bool last = Step == Options.Steps, due = Options.CheckpointEvery > 0 && Step % Options.CheckpointEvery == 0;
                if (Options.OutputFolder != null && (last || due)) SaveCheckpoint(elapsedBefore + clock.Elapsed.TotalSeconds);
            }
        }
        finally
        {
            metrics?.Dispose();
            model.eval();
        }
        return history;
    }

    TrainingProgress TrainStep(IBatchSource<TBatch> batches, Stopwatch clock, Queue<(double Seconds, int Step)> pace)
    {
        double started = clock.Elapsed.TotalSeconds;    // after the previous step's checkpoint, which tokens/s leaves out
        using var scope = NewDisposeScope();
        optimizer.LearningRateFactor = schedule.Factor(Step);
        optimizer.ZeroGrad();
        double lossSum = 0;
        long tokens = 0;
        for (int micro = 0; micro < Options.GradientAccumulation; micro++)
        {
            var batch = batches.At(DataPosition + micro);
            var loss = objective.Loss(batch);
            double value = loss.ToDouble();
            if (!double.IsFinite(value)) throw Diverged($"the loss is {value} (micro-batch {micro + 1} of {Options.GradientAccumulation})");
            lossSum += value;
            tokens += objective.Tokens?.Invoke(batch) ?? 0;
            if (Options.GradientAccumulation == 1) loss.backward();
            else
            {
                using var share = (1.0 / Options.GradientAccumulation).ToScalar();
                loss.mul(share).backward();
            }
        }
        double gradNorm = ClipGradients();
        if (!double.IsFinite(gradNorm)) throw Diverged($"the gradients' norm is {gradNorm}");
        double learningRate = optimizer.LearningRate;
        optimizer.Step();
        Step++;

        double seconds = clock.Elapsed.TotalSeconds;
        pace.Enqueue((seconds, Step));
        if (pace.Count > 20) pace.Dequeue();
        var (firstSeconds, firstStep) = pace.Peek();
        double perStep = pace.Count > 1 ? (seconds - firstSeconds) / (Step - firstStep) : seconds / Math.Max(1, history.Count + 1);
        double stepSeconds = seconds - started;
        return new TrainingProgress(Stage.Name, Step, Options.Steps, lossSum / Options.GradientAccumulation, learningRate, gradNorm, tokens,
            stepSeconds > 0 ? tokens / stepSeconds : 0, TimeSpan.FromSeconds(elapsedBefore + seconds), TimeSpan.FromSeconds(perStep * (Options.Steps - Step)));
    }

    /// <summary>
    /// The global L2 norm of the gradients, √(Σ g²) over all of them (PyTorch's clip_grad_norm_ takes the norm
    /// of the per-tensor norms: the same value up to rounding); when clipping is on, every gradient is scaled
    /// by min(1, max / (norm + 1e-6)). Every number handed to LibTorch is a Scalar held until the call returns
    /// (see <see cref="AdamWOptimizer"/>: TorchSharp's implicit ones can be collected mid-call).
    /// </summary>
    double ClipGradients()
    {
        using var _ = no_grad();
        var gradients = trainable.Select(p => p.Parameter.grad).OfType<Tensor>().ToList();
        if (gradients.Count == 0) return 0;
        double norm = Math.Sqrt(stack(gradients.Select(g => g.square().sum()).ToList()).sum().ToDouble());
        if (Options.MaxGradNorm > 0 && double.IsFinite(norm))
        {
            double factor = Math.Min(1, Options.MaxGradNorm / (norm + 1e-6));
            using var scale = factor.ToScalar();
            foreach (var gradient in gradients) gradient.mul_(scale);
        }
        return norm;
    }

    TrainingDivergedException Diverged(string what) => new(
        $"stage '{Stage.Name}', step {Step + 1}: {what}; training stopped before the weights changed. " +
        (LastCheckpoint is null ? "No checkpoint was written before it." : $"The last good checkpoint is kept: {LastCheckpoint}."));

    /// <summary>Writes a checkpoint of the current step into the output folder and returns its folder.</summary>
    public string SaveCheckpoint() => SaveCheckpoint(history.Count == 0 ? elapsedBefore : history[^1].Elapsed.TotalSeconds);

    string SaveCheckpoint(double elapsedSeconds)
    {
        if (Options.OutputFolder is null) throw new InvalidOperationException("checkpoints need an output folder (TrainerOptions.OutputFolder).");
        var state = CurrentState() with { ElapsedSeconds = elapsedSeconds };
        var weights = trainable.Where(p => !adapterNames.Contains(p.Name)).Select(p => (p.Name, (Tensor)p.Parameter));
        LastCheckpoint = TrainingCheckpoint.Save(Options.OutputFolder, state, weights, adapters, optimizer, Options.KeepCheckpoints);
        return LastCheckpoint;
    }

    TrainingCheckpoint.State CurrentState() => new(Stage.Name, Step, Options.Steps, DataPosition, Options.GradientAccumulation, Options.Seed ?? -1, Options.Data, 0,
        adapters is null ? null : AdapterFiles.ConfigJson(adapters.Config),
        trainable.ToDictionary(p => p.Name, p => p.Parameter.shape, StringComparer.Ordinal),
        model.parameters().Sum(p => p.numel()), optimizer.StateSteps());

    // A resumed run drops the lines of steps after its checkpoint (written before the process stopped), so the file reads as one unbroken run.
    static void KeepMetricsUpTo(string path, int step)
    {
        if (!File.Exists(path)) return;
        var kept = File.ReadAllLines(path).TakeWhile(line =>
        {
            try { return JsonNode.Parse(line)?["step"]?.GetValue<int>() <= step; }
            catch (System.Text.Json.JsonException) { return false; }
        }).ToList();
        AtomicFile.WriteAllText(path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
    }

    public void Dispose() => optimizer.Dispose();
}
