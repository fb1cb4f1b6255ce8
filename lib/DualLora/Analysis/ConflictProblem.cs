using DualLora.Adapters;
using DualLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Analysis;

/// <summary>Sizes and training settings of a <see cref="ConflictProblem"/>.</summary>
/// <param name="Width">d: the width of the shared input x.</param>
/// <param name="Tasks">K: how many tasks ask for conflicting maps.</param>
/// <param name="TaskRank">The rank of each task's own change M_k.</param>
/// <param name="TrainSamples">Samples to train on.</param>
/// <param name="TestSamples">Held-out samples the errors are measured on.</param>
/// <param name="Steps">AdamW steps.</param>
/// <param name="BatchSize">Samples per step.</param>
/// <param name="LearningRate">AdamW's learning rate (no weight decay).</param>
/// <param name="LogEvery">Steps between the points of the loss curve.</param>
public sealed record ConflictProblemOptions(
    int Width = 32, int Tasks = 4, int TaskRank = 2, int TrainSamples = 2048, int TestSamples = 1024,
    int Steps = 600, int BatchSize = 64, double LearningRate = 5e-3, int LogEvery = 20);

/// <summary>The frozen "pretrained" layer of the problem: one projection named q_proj, as in an attention block.</summary>
public sealed class ConflictModel : nn.Module<Tensor, Tensor>
{
    public readonly AdaptableLinear q_proj;

    public ConflictModel(Tensor baseWeight) : base(nameof(ConflictModel))
    {
        q_proj = new AdaptableLinear(baseWeight.shape[1], baseWeight.shape[0], hasBias: false, dtype: baseWeight.dtype);
        using (no_grad()) q_proj.weight.copy_(baseWeight);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => q_proj.call(input);
}

/// <summary>One training run: the loss curve, and the relative test error per task and overall.</summary>
public sealed record ConflictRun(string Method, long Seed, long TrainableParameters, IReadOnlyList<(int Step, double Loss)> LossCurve,
    IReadOnlyList<double> TaskErrors, double TestError);

/// <summary>
/// A small data conflict, made to show what the adapters can and cannot represent. Every sample is a
/// shared input x ∈ R^d and a task k, presented as one token x' = [x ; e_k] (e_k one-hot). A frozen base
/// layer W0 maps x' to W0 x'; task k wants W0 x' + M_k x, where each M_k is a different random matrix of
/// rank <see cref="ConflictProblemOptions.TaskRank"/>. The same x must change differently under each task:
/// a LoRA update ΔW x' = ΔW_x x + ΔW_e e_k can only add one linear map of x for all tasks (plus a per-task
/// offset), so it cannot fit the conflict; an adapter that gates its ranks per token can.
/// The error reported is relative: ‖prediction − target‖² / ‖M_k x‖², 1 for learning nothing, 0 for exact.
/// </summary>
public sealed class ConflictProblem : IDisposable
{
    readonly Tensor baseWeight, taskMaps;

    public ConflictProblemOptions Options { get; }
    public Tensor TrainInputs { get; }
    public Tensor TrainTargets { get; }
    public Tensor TrainTasks { get; }
    public Tensor TestInputs { get; }
    public Tensor TestTargets { get; }
    public Tensor TestTasks { get; }

    ConflictProblem(ConflictProblemOptions options, Tensor baseWeight, Tensor taskMaps, Tensor[] train, Tensor[] test)
    {
        Options = options; this.baseWeight = baseWeight; this.taskMaps = taskMaps;
        (TrainInputs, TrainTargets, TrainTasks) = (train[0], train[1], train[2]);
        (TestInputs, TestTargets, TestTasks) = (test[0], test[1], test[2]);
    }

    /// <summary>Draws the base layer, the task maps and the data from <paramref name="seed"/> (float64 throughout, on the CPU).</summary>
    public static ConflictProblem Create(ConflictProblemOptions options, long seed)
    {
        var generator = new Generator((ulong)seed);
        int d = options.Width, k = options.Tasks;
        var baseWeight = randn(d, d + k, dtype: ScalarType.Float64, generator: generator) / Math.Sqrt(d + k);
        // M_k = U_k V_k^T with entries scaled so that ‖M_k x‖ is about ‖x‖.
        var u = randn(k, d, options.TaskRank, dtype: ScalarType.Float64, generator: generator);
        var v = randn(k, d, options.TaskRank, dtype: ScalarType.Float64, generator: generator);
        var taskMaps = u.matmul(v.transpose(1, 2)) / Math.Sqrt(d * options.TaskRank);
        Tensor[] Draw(int samples)
        {
            var x = randn(samples, d, dtype: ScalarType.Float64, generator: generator);
            var tasks = randint(k, [samples], dtype: ScalarType.Int64, generator: generator);
            var inputs = cat([x, nn.functional.one_hot(tasks, k).to(ScalarType.Float64)], 1);
            var change = taskMaps.index_select(0, tasks).matmul(x.unsqueeze(-1)).squeeze(-1);
            return [inputs, inputs.matmul(baseWeight.t()) + change, tasks];
        }
        return new ConflictProblem(options, baseWeight, taskMaps, Draw(options.TrainSamples), Draw(options.TestSamples));
    }

    /// <summary>A fresh copy of the frozen base layer, for one adapter to be injected into.</summary>
    public ConflictModel NewModel() => new(baseWeight);

    /// <summary>
    /// The best any single linear update can do, whatever its rank: ΔW fitted to the training set by least
    /// squares. A LoRA of any rank cannot beat this relative test error.
    /// </summary>
    public double BestSingleLinearMapError()
    {
        using var scope = NewDisposeScope();
        var residual = TrainTargets - TrainInputs.matmul(baseWeight.t());
        var delta = linalg.lstsq(TrainInputs, residual).Solution;          // (d + K, d)
        return RelativeErrors(TestInputs.matmul(baseWeight.t()) + TestInputs.matmul(delta)).Overall;
    }

    /// <summary>
    /// Injects <paramref name="config"/> into a fresh base model, trains it with AdamW on the training set
    /// (batches drawn from <paramref name="seed"/>, which also seeds the adapter's init), and evaluates it
    /// on the test set. The model is trained in float64, so runs are reproducible bit for bit on one machine.
    /// </summary>
    public ConflictRun Train(string method, AdapterConfig config, long seed, Action<ConflictModel, AdapterHandle>? inspect = null)
    {
        torch.manual_seed(seed);
        var generator = new Generator((ulong)seed + 1);
        using var model = NewModel();
        var handle = AdapterInjection.Inject(model, config);
        var stage = TrainingStage.AdaptersOnly(handle, Options.LearningRate);
        var objective = new TrainingObjective<Tensor>(batch =>
        {
            var loss = nn.functional.mse_loss(model.call(TrainInputs.index_select(0, batch)), TrainTargets.index_select(0, batch));
            return handle.AuxiliaryLoss() is { } auxiliary ? loss + auxiliary : loss;
        });
        // A constant learning rate, no clipping and the generator as the injection left it: the problem's published runs.
        var options = new TrainerOptions(Options.Steps) { Schedule = ScheduleKind.Constant, WarmupRatio = 0, MaxGradNorm = 0 };
        using var trainer = new Trainer<Tensor>(model, stage, objective, options, handle);
        var history = trainer.Train(BatchSource.Sequential(() => randint(Options.TrainSamples, [Options.BatchSize], dtype: ScalarType.Int64, generator: generator)));
        var curve = history.Where(p => p.Step % Options.LogEvery == 0 || p.Step == 1).Select(p => (p.Step, p.Loss)).ToList();
        model.eval();
        inspect?.Invoke(model, handle);
        ConflictRun result;
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var (perTask, overall) = RelativeErrors(model.call(TestInputs));
            result = new ConflictRun(method, seed, handle.Count().Trainable, curve, perTask, overall);
        }
        return result;
    }

    (IReadOnlyList<double> PerTask, double Overall) RelativeErrors(Tensor predictions)
    {
        using var scope = NewDisposeScope();
        var error = (predictions - TestTargets).square().sum(1);
        var change = (TestTargets - TestInputs.matmul(baseWeight.t())).square().sum(1);
        var perTask = Enumerable.Range(0, Options.Tasks).Select(k =>
        {
            var mask = TestTasks.eq(k);
            return (error.masked_select(mask).sum() / change.masked_select(mask).sum()).item<double>();
        }).ToList();
        return (perTask, (error.sum() / change.sum()).item<double>());
    }

    public void Dispose()
    {
        foreach (var tensor in new[] { baseWeight, taskMaps, TrainInputs, TrainTargets, TrainTasks, TestInputs, TestTargets, TestTasks }) tensor.Dispose();
    }
}
