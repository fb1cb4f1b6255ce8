using System.Diagnostics;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.Evaluation;
using DualLora.IO;
using DualLora.Multimodal;
using DualLora.Training;
using DualLora.Vision;
using static TorchSharp.torch;

namespace DualLora.Pipelines;

/// <summary>Where a comparison reads and writes.</summary>
/// <param name="Model">The base model (a llava-hf folder with its tokenizer.model).</param>
/// <param name="Data">A scene-suite export (<c>data export</c>): training.json, validation.json, evaluation.json and images/.</param>
/// <param name="Output">Where the runs train: stage 1's connectors, each run's folder (its checkpoints until it ends), the data subsets.</param>
/// <param name="Report">Where the plan, one record a finished run (<c>runs/ID.json</c>), results.csv and results.md go: small enough to commit.</param>
public sealed record ComparisonFolders(string Model, string Data, string Output, string Report);

/// <summary>
/// Runs a <see cref="ComparisonPlan"/> through the fine-tuning pipeline (<see cref="FineTuning"/>), one run after the
/// other: stage 1 once per VCE setting and seed, then the learning-rate selection on the validation split, then every
/// evaluation run at the chosen rates, and writes the report (<see cref="ComparisonReport"/>). It can be stopped at any
/// moment and started again with the same plan: finished runs are skipped (their records are in the report folder), a
/// stopped run continues from its newest checkpoint, and a different plan in the same report folder is refused.
/// </summary>
public sealed class Comparison
{
    public const string PlanFile = "plan.json", RecordsFolder = "runs";

    readonly ComparisonPlan plan;
    readonly ComparisonFolders folders;
    readonly Device? device;
    readonly Action<string> log;
    readonly Lazy<IReadOnlyList<(string Path, long In, long Out)>> targets;

    /// <param name="plan">The comparison.</param>
    /// <param name="folders">Model, data, output and report folders.</param>
    /// <param name="device">Where the runs train; the CPU by default.</param>
    /// <param name="log">Each milestone: a stage 1 done, a run started or finished with its score, a learning rate chosen.</param>
    public Comparison(ComparisonPlan plan, ComparisonFolders folders, Device? device = null, Action<string>? log = null)
    {
        plan.Validate();
        this.plan = plan;
        this.folders = folders with
        {
            Model = Path.GetFullPath(folders.Model), Data = Path.GetFullPath(folders.Data),
            Output = Path.GetFullPath(folders.Output), Report = Path.GetFullPath(folders.Report),
        };
        this.device = device;
        this.log = log ?? (_ => { });
        targets = new(() =>
        {
            using var probe = HuggingFaceModels.LoadLlava(this.folders.Model);
            return ParameterBudget.TargetShapes(probe, new DualLoraConfig().WithTargetsFor(probe));
        });
    }

    /// <summary>Path, d_in and d_out of every layer the adapters target in the model (its default targets).</summary>
    public IReadOnlyList<(string Path, long In, long Out)> Targets => targets.Value;

    string DataFile(string name) => Path.Combine(folders.Data, name);
    string RecordFile(ComparisonRunSpec run) => Path.Combine(folders.Report, RecordsFolder, run.Id + ".json");

    /// <summary>Runs what is not done yet and returns the report over every record; <paramref name="progress"/> gets each training step.</summary>
    public ComparisonReport Run(Action<ComparisonRunSpec?, TrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        foreach (var file in new[] { "training.json", "validation.json", "evaluation.json" })
            if (!File.Exists(DataFile(file)))
                throw new FileNotFoundException($"{folders.Data}: {file} is missing; the data folder must be a scene-suite export (data export DIR).");
        if (!File.Exists(Path.Combine(folders.Model, "tokenizer.model")))
            throw new FileNotFoundException($"{folders.Model}: tokenizer.model is missing; the model folder must hold its tokenizer.");
        CheckPlan();
        Directory.CreateDirectory(Path.Combine(folders.Report, RecordsFolder));
        string validation = Subset("validation", plan.ValidationScenes), evaluation = Subset("evaluation", plan.EvaluationScenes);

        var clock = Stopwatch.StartNew();
        var selection = plan.SelectionRuns();
        log($"compare: {selection.Count} selection runs on {plan.ValidationScenes} validation scenes, then the evaluation runs on {plan.EvaluationScenes} evaluation scenes; " +
            $"{Directory.GetFiles(Path.Combine(folders.Report, RecordsFolder), "*.json").Length} runs already done");

        foreach (var vce in plan.Vce)
            foreach (var seed in plan.Seeds)
                Stage1(vce, seed, progress, cancellation);
        int index = 0;
        foreach (var run in selection) Execute(run, validation, "validation", ++index, selection.Count, progress, cancellation);
        // Each method's choice reads its selection records once, not once per run that uses it.
        var rates = new Dictionary<(string, bool), double>();
        var chosen = plan.EvaluationRuns((method, vce) => rates.TryGetValue((method, vce), out var rate) ? rate : rates[(method, vce)] = ChosenRate(method, vce));
        foreach (var ((method, vce), rate) in chosen.Select(r => ((r.Method, r.Vce), r.LearningRate)).Distinct())
            log($"learning rate for {method}{(vce ? " + VCE" : "")}: {rate:G3} (best exact match on {plan.ValidationScenes} validation scenes)");
        index = 0;
        foreach (var run in chosen) Execute(run, evaluation, "evaluation", ++index, chosen.Count, progress, cancellation);

        var report = ComparisonReport.Load(folders.Report);
        report.Write(folders.Report);
        log($"compare: done in {clock.Elapsed:hh\\:mm\\:ss} (this invocation); report in {folders.Report}");
        return report;
    }

    /// <summary>Writes the plan on the first start; later starts must bring the same plan, or the records would mix two comparisons.</summary>
    void CheckPlan()
    {
        string file = Path.Combine(folders.Report, PlanFile);
        if (File.Exists(file))
        {
            var differences = ComparisonPlan.Read(file).Differences(plan);
            if (differences.Count > 0)
                throw new InvalidFileException(file, $"the report folder holds another comparison's plan; choose another report folder or remove it. Differences:\n  " +
                    string.Join("\n  ", differences));
            return;
        }
        Directory.CreateDirectory(folders.Report);
        AtomicFile.WriteAllText(file, plan.ToJson().ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>The samples of the first <paramref name="scenes"/> scenes of a split, as a LLaVA JSON file under the output folder (all fields kept).</summary>
    string Subset(string split, int scenes)
    {
        var all = JsonNode.Parse(File.ReadAllText(DataFile(split + ".json")))!.AsArray();
        var kept = all.Where(sample => SceneOf(sample!["id"]!.GetValue<string>()) < scenes).Select(sample => sample!.DeepClone()).ToArray();
        if (kept.Length == 0) throw new InvalidFileException(DataFile(split + ".json"), $"no sample of the first {scenes} scenes.");
        string file = Path.Combine(folders.Output, "data", $"{split}-first-{scenes}-scenes.json");
        AtomicFile.WriteAllText(file, new JsonArray(kept).ToJsonString());
        return file;
    }

    // Scene-suite ids are {split}-{scene:D5}-{task}.
    static int SceneOf(string id) => int.Parse(id.Split('-')[1], System.Globalization.CultureInfo.InvariantCulture);

    string Stage1Folder(bool vce, long seed) => Path.Combine(folders.Output, "stage1", $"{(vce ? "vce" : "novce")}-seed{seed}");

    string? Stage1Connector(bool vce, long seed) =>
        plan.Stage1Steps == 0 ? null : Path.Combine(Stage1Folder(vce, seed), FineTuning.FinalFolder, FineTuning.ConnectorFile);

    void Stage1(bool vce, long seed, Action<ComparisonRunSpec?, TrainingProgress>? progress, CancellationToken cancellation)
    {
        if (Stage1Connector(vce, seed) is not { } connector || File.Exists(connector)) return;
        var config = Config(vce, seed, new DualLoraConfig(), plan.Stage1LearningRate, 0, null, Stage1Folder(vce, seed)) with
        {
            Stage1 = new Stage1Settings(new StageLength(plan.Stage1Steps, null), plan.Stage1LearningRate),
            Stage2 = new Stage2Settings(new StageLength(0, null)),
            Connector = null,
        };
        using var run = FineTuning.Prepare(config, device);
        var result = run.Run(resume: true, p => progress?.Invoke(null, p), cancellation: cancellation);
        log($"stage 1 {(vce ? "with VCE" : "without VCE")}, seed {seed}: {plan.Stage1Steps} steps, final loss {result.Stage1[^1].Loss:F3}");
    }

    FineTuningConfig Config(bool vce, long seed, AdapterConfig adapter, double rate, int stage2Steps, string? evaluation, string output) =>
        new(folders.Model, Path.Combine(folders.Model, "tokenizer.model"), vce ? new VceConfig() : null,
            new DataFiles(DataFile("training.json"), folders.Data, evaluation), AdapterSettings.From(adapter),
            new Stage1Settings(new StageLength(0, null), plan.Stage1LearningRate),
            new Stage2Settings(new StageLength(stage2Steps, null), rate, rate * plan.ConnectorShare),
            output, plan.BatchSize, MaxLength: plan.MaxLength, Seed: seed, CheckpointEvery: plan.CheckpointEvery,
            Evaluation: new EvaluationSettings(plan.EvaluationBatchSize, plan.MaxNewTokens))
        { Connector = Stage1Connector(vce, seed) };

    /// <summary>The budget a run is matched to: the parameters of a Dual-LoRA of its rank.</summary>
    public long Budget(int rank) => ParameterBudget.Count(new DualLoraConfig(rank), Targets);

    /// <summary>
    /// The adapter of a run. Dual-LoRA and its ablation variants take the run's rank; at a matched budget every other
    /// method takes the ranks <see cref="ParameterBudget.Match"/> gives; at equal rank LoRA takes the rank and a mixture
    /// spreads it over its experts. Every method's update is scaled by α/r = 2, as Dual-LoRA's (METHOD.md §1).
    /// </summary>
    public AdapterConfig Adapter(ComparisonRunSpec run)
    {
        if (run.Method == ComparisonPlan.DualLora) return new DualLoraConfig(run.Rank);
        if (ComparisonPlan.AblationVariants.FirstOrDefault(v => v.Name == run.Method) is { Name: not null } variant)
            return new DualLoraConfig(run.Rank, UseLayerNorm: variant.LayerNorm, UseRelu: variant.Relu);
        var template = AdapterSettings.Default(run.Method).ToConfig() switch
        {
            MoeLoraConfig moe => moe with { Experts = plan.Experts },
            var other => other,
        };
        AdapterConfig sized = run.Phase == ComparisonPhase.EqualRank
            ? template switch
            {
                LoraConfig lora => lora with { Rank = run.Rank },
                MoeLoraConfig moe => moe.WithTotalRank(run.Rank),
                var other => other,
            }
            : ParameterBudget.Match(template, Targets, Budget(run.Rank));
        return sized switch
        {
            LoraConfig lora => lora with { Alpha = 2.0 * lora.Rank },
            MoeLoraConfig moe => moe with { Alpha = 2.0 * moe.ExpertRank },
            var other => other,
        };
    }

    /// <summary>The learning rate a method chose on the validation split: the highest exact match over the grid, the lower rate on a tie.</summary>
    public double ChosenRate(string method, bool vce)
    {
        var candidates = plan.LearningRates.Select(rate => new ComparisonRunSpec(ComparisonPhase.Selection, method, vce, plan.SelectionRank, rate, plan.Seeds[0]))
            .Select(run => (run.LearningRate, File: RecordFile(run))).ToList();
        var missing = candidates.Where(c => !File.Exists(c.File)).Select(c => c.File).ToList();
        if (missing.Count > 0) throw new InvalidOperationException($"no learning rate chosen yet for {method} (VCE {vce}): {missing.Count} selection runs are missing, e.g. {missing[0]}.");
        return ComparisonReport.ChooseRate(candidates.ToDictionary(c => c.LearningRate, c => ComparisonRecord.Read(c.File).OverallExactMatch));
    }

    void Execute(ComparisonRunSpec run, string dataFile, string split, int index, int count, Action<ComparisonRunSpec?, TrainingProgress>? progress, CancellationToken cancellation)
    {
        string recordFile = RecordFile(run);
        if (File.Exists(recordFile)) return;
        var clock = Stopwatch.StartNew();
        var adapter = Adapter(run);
        string output = Path.Combine(folders.Output, RecordsFolder, run.Id);
        var config = Config(run.Vce, run.Seed, adapter, run.LearningRate, plan.Stage2Steps, dataFile, output);
        log($"[{index}/{count}] {run.Id}: {Describe(adapter)}");
        FineTuningResult result;
        using (var fineTuning = FineTuning.Prepare(config, device))
        {
            result = fineTuning.Run(resume: true, p => progress?.Invoke(run, p), cancellation: cancellation);
        }
        var evaluation = result.Evaluation ?? throw new InvalidOperationException($"{run.Id}: the run was not evaluated.");
        // The whole stage's losses: after a restart the trainer's own history holds only the steps of this process.
        var losses = TrainingMetrics.ReadLosses(Path.Combine(output, FineTuning.Stage2Folder));
        // Times that count the steps of every process the run took, not only this one's: the stage's training time from
        // its metrics, and the whole run's as this process's time with its own steps replaced by all of them.
        var elapsed = TrainingMetrics.ReadElapsed(Path.Combine(output, FineTuning.Stage2Folder));
        double trainSeconds = elapsed[^1].Seconds;
        int stepsHere = result.Stage2.Count;
        double trainedHere = trainSeconds - (stepsHere == 0 ? trainSeconds : elapsed.Count > stepsHere ? elapsed[^(stepsHere + 1)].Seconds : 0);
        var record = new ComparisonRecord(run, run.Phase == ComparisonPhase.EqualRank ? ParameterBudget.Count(adapter, Targets) : Budget(run.Rank),
            ParameterBudget.Count(adapter, Targets), Describe(adapter), Curve(losses), losses.Skip(losses.Count - Math.Max(1, losses.Count / 10)).Average(p => p.Loss),
            split, evaluation.Overall.Count,
            evaluation.Rows.ToDictionary(t => t.Task, t => t.ExactMatch),
            evaluation.Tasks.Where(t => t.F1 is not null).ToDictionary(t => t.Task, t => t.F1!.Value),
            trainSeconds, clock.Elapsed.TotalSeconds - trainedHere + trainSeconds);
        record.Write(recordFile);
        // The record holds what the comparison needs; the run's checkpoints only served a restart.
        string checkpoints = Path.Combine(output, FineTuning.Stage2Folder, TrainingCheckpoint.Folder);
        if (Directory.Exists(checkpoints)) Directory.Delete(checkpoints, recursive: true);
        log(FormattableString.Invariant($"[{index}/{count}] {run.Id}: exact match {100 * record.OverallExactMatch:F1}% on {record.Samples} {split} samples, final loss {record.FinalLoss:F3}, {record.Seconds:F0} s"));
    }

    /// <summary>The loss averaged over windows, at most 50 points, each at its window's last step.</summary>
    static IReadOnlyList<(int Step, double Loss)> Curve(IReadOnlyList<(int Step, double Loss)> losses)
    {
        int window = Math.Max(1, (losses.Count + 49) / 50);
        return losses.Chunk(window).Select(c => (c[^1].Step, c.Average(p => p.Loss))).ToList();
    }

    /// <summary>The adapter's ranks in words, the ranks a rank pattern gives some layers included.</summary>
    public static string Describe(AdapterConfig adapter) => adapter switch
    {
        DualLoraConfig dual => $"Dual-LoRA r={dual.Rank}{Pattern(dual.RankPattern)}{(dual.UseLayerNorm ? "" : ", no LayerNorm")}{(dual.UseRelu ? "" : ", no ReLU")}",
        LoraConfig lora => $"LoRA r={lora.Rank}{Pattern(lora.RankPattern)}",
        MoeLoraConfig moe => $"{moe.Experts} experts, ranks {string.Join("+", moe.Ranks)}{Pattern(moe.RankPattern)}, {moe.Routing.ToString().ToLowerInvariant()} routing",
        _ => adapter.ToString(),
    };

    static string Pattern(IReadOnlyDictionary<string, int> pattern) =>
        pattern.Count == 0 ? "" : $" ({pattern.Count} layers: {string.Join(", ", pattern.Values.Distinct().Order())})";
}
