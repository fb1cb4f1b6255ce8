using DualLora.IO;
using DualLora.Adapters;
using DualLora.Data;
using DualLora.Pipelines;
using DualLora.Runtime;
using DualLora.Training;

namespace DualLora.Tests.Pipelines;

/// <summary>
/// The comparison: its plan, the adapters it builds at matched budgets, its report, and a tiny comparison on the small
/// pretrained base that is killed and continued. Runs draw their initial weights from the global generator, so the
/// class runs alone.
/// </summary>
[Collection(ProcessStateCollection.Name)]
public sealed class ComparisonTests : IDisposable
{
    static readonly RuntimeEnvironment Environment = RuntimeEnvironment.Find(AppContext.BaseDirectory);
    static readonly string Root = Path.GetDirectoryName(Environment.SourceFile)!;
    static readonly string SmallBase = Path.Combine(Root, "data", "pretrained", "small-llava");

    readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    /// <summary>Two methods, without VCE, two learning rates, one seed, a few steps: six runs of seconds each.</summary>
    static ComparisonPlan Tiny => new([ComparisonPlan.DualLora, ComparisonPlan.Lora], [false], [2], EqualRank: null, Ablation: false, Seeds: [3],
        LearningRates: [1e-3, 1e-2], SelectionRank: 2, Stage1Steps: 2, Stage2Steps: 3, BatchSize: 4, ValidationScenes: 1, EvaluationScenes: 1)
    { CheckpointEvery = 1, EvaluationBatchSize = 8, MaxNewTokens = 6, TrainingScenes = 4 };

    string Export()
    {
        string folder = _folder.File("scenes");
        using var source = FashionMnist.Load(Environment, FashionMnistSplit.Test);
        SceneSuiteExport.Write(SceneSuite.Build(source, new SceneSuiteOptions(0, 4, 2, 2)), source, folder);
        return folder;
    }

    ComparisonFolders Folders(string data, string name) => new(SmallBase, data, _folder.File(name), _folder.File(name + "-report"));

    [Fact]
    public void A_stopped_comparison_continues_and_ends_as_one_never_stopped()
    {
        string data = Export();
        var whole = new Comparison(Tiny, Folders(data, "whole")).Run();
        Assert.Equal(6, whole.Records.Count);   // 4 selection runs, then both methods at their chosen rates

        // Stopped at the second step of the third run, after its first checkpoint; then started again.
        var stopped = Folders(data, "stopped");
        using var stop = new CancellationTokenSource();
        int runsStarted = 0;
        ComparisonRunSpec? current = null;
        void Progress(ComparisonRunSpec? run, TrainingProgress step)
        {
            if (run != null && run != current) { current = run; runsStarted++; }
            if (runsStarted == 3 && step.Step == 2) stop.Cancel();
        }
        Assert.ThrowsAny<OperationCanceledException>(() => new Comparison(Tiny, stopped).Run(Progress, stop.Token));
        Assert.Equal(2, Directory.GetFiles(Path.Combine(stopped.Report, Comparison.RecordsFolder)).Length);
        var continued = new Comparison(Tiny, stopped).Run();

        Assert.Equal(whole.Records.Select(r => r.Run.Id), continued.Records.Select(r => r.Run.Id));
        foreach (var (a, b) in whole.Records.Zip(continued.Records))
        {
            Assert.Equal(a.FinalLoss, b.FinalLoss);
            Assert.Equal(a.ExactMatch, b.ExactMatch);
            Assert.Equal(a.LossCurve, b.LossCurve);
        }
        // The times count the steps of both processes: stage 2's from its metrics, and the whole run at least that.
        foreach (var record in continued.Records)
        {
            var elapsed = TrainingMetrics.ReadElapsed(Path.Combine(stopped.Output, Comparison.RecordsFolder, record.Run.Id, FineTuning.Stage2Folder));
            Assert.Equal(elapsed[^1].Seconds, record.TrainSeconds, 6);
            Assert.True(record.TrainSeconds > 0 && record.Seconds >= record.TrainSeconds, $"{record.Run.Id}: {record.TrainSeconds} s training, {record.Seconds} s in all");
        }
        Assert.Equal(whole.ToCsv().Split('\n').Length, continued.ToCsv().Split('\n').Length);
        Assert.True(File.Exists(Path.Combine(stopped.Report, ComparisonReport.MarkdownFile)));

        // Finished: a third start trains nothing and rewrites no record.
        var records = Directory.GetFiles(Path.Combine(stopped.Report, Comparison.RecordsFolder)).ToDictionary(f => f, File.GetLastWriteTimeUtc);
        new Comparison(Tiny, stopped).Run();
        Assert.All(records, r => Assert.Equal(r.Value, File.GetLastWriteTimeUtc(r.Key)));

        // Another plan in the same report folder is refused, with the difference named.
        var error = Assert.Throws<InvalidFileException>(() => new Comparison(Tiny with { Stage2Steps = 4 }, stopped).Run());
        Assert.Contains("stage2_steps: 3 here, 4 there", error.Message);
    }

    [Fact]
    public void Every_method_is_matched_within_two_percent_of_each_budget_and_scales_its_update_by_two()
    {
        var comparison = new Comparison(ComparisonPlan.Full, Folders(_folder.Path, "unused"));
        Assert.Equal(8, comparison.Targets.Count);   // q_proj and v_proj of the small decoder's 4 layers
        foreach (int rank in ComparisonPlan.Full.BudgetRanks)
        {
            long budget = comparison.Budget(rank);
            // By hand: q_proj 192 -> 192 and v_proj 192 -> 64, r (2 d_in + d_out) + 2r each, in 4 layers.
            Assert.Equal(4L * (rank * (2 * 192 + 192) + 2 * rank + rank * (2 * 192 + 64) + 2 * rank), budget);
            foreach (var method in ComparisonPlan.Full.Methods)
            {
                var adapter = comparison.Adapter(new ComparisonRunSpec(ComparisonPhase.Evaluation, method, false, rank, 1e-3, 0));
                long count = ParameterBudget.Count(adapter, comparison.Targets);
                Assert.True(Math.Abs(count - budget) <= 0.02 * budget, $"{method} at r = {rank}: {count} against {budget}");
                Assert.Equal(2.0, adapter.Scaling, 12);
            }
        }
        var equalRank = comparison.Adapter(new ComparisonRunSpec(ComparisonPhase.EqualRank, "moe_dense", false, 16, 1e-3, 0));
        Assert.Equal([4, 4, 4, 4], Assert.IsType<MoeLoraConfig>(equalRank).Ranks);
        Assert.Equal(16, Assert.IsType<LoraConfig>(comparison.Adapter(new ComparisonRunSpec(ComparisonPhase.EqualRank, "lora", false, 16, 1e-3, 0))).Rank);
        var neither = Assert.IsType<DualLoraConfig>(comparison.Adapter(new ComparisonRunSpec(ComparisonPhase.Ablation, "dual_lora_neither", false, 16, 1e-3, 0)));
        Assert.Equal((16, false, false), (neither.Rank, neither.UseLayerNorm, neither.UseRelu));
    }

    static ComparisonRecord Record(string method, long seed, double name, double list, ComparisonPhase phase = ComparisonPhase.Evaluation, double rate = 1e-3) =>
        new(new ComparisonRunSpec(phase, method, false, 4, rate, seed), 1000, 990, "r=4", [(1, 2.0), (2, 1.0)], 1.0,
            phase == ComparisonPhase.Selection ? "validation" : "evaluation", 4,
            new Dictionary<string, double> { ["name"] = name, ["list"] = list, [ComparisonRecord.Overall] = (name + list) / 2 },
            new Dictionary<string, double> { ["list"] = list }, 10, 12);

    [Fact]
    public void The_report_gives_means_deviations_and_the_paired_difference_from_lora()
    {
        var plan = Tiny with { Seeds = [0, 1], BudgetRanks = [4], SelectionRank = 4 };
        var report = new ComparisonReport(plan,
        [
            Record("lora", 0, 0.4, 0.2), Record("lora", 1, 0.6, 0.2),
            Record("dual_lora", 0, 0.6, 0.2), Record("dual_lora", 1, 0.6, 0.4),
            Record("lora", 0, 0.5, 0.5, ComparisonPhase.Selection, 1e-3), Record("lora", 0, 0.7, 0.3, ComparisonPhase.Selection, 1e-2),
            Record("dual_lora", 0, 0.5, 0.5, ComparisonPhase.Selection, 1e-3), Record("dual_lora", 0, 0.6, 0.4, ComparisonPhase.Selection, 1e-2),
        ]);
        var dual = report.Rows().Single(r => r.Method == "dual_lora");
        // Overall: LoRA 0.3 and 0.4, Dual-LoRA 0.4 and 0.5; name: 0.6 and 0.6.
        Assert.Equal(0.45, dual.Scores["overall"].Mean, 12);
        Assert.Equal(Math.Sqrt(0.005), dual.Scores["overall"].StandardDeviation, 12);
        Assert.Equal(0, dual.Scores["name"].StandardDeviation, 12);
        // Paired: +0.1 on both seeds, no spread; above LoRA on both.
        Assert.Equal(0.1, dual.AgainstLora!.Value.Mean, 12);
        Assert.Equal(0, dual.AgainstLora!.Value.StandardDeviation, 12);
        Assert.Equal(2, dual.Wins);
        Assert.Null(report.Rows().Single(r => r.Method == "lora").AgainstLora);

        // Ties on the validation split go to the lower rate (both LoRA rates score 0.5 overall); Dual-LoRA's 1e-3 scores 0.5 against 0.5.
        var chosen = report.Selection().ToDictionary(s => s.Method, s => s.Chosen);
        Assert.Equal(1e-3, chosen["lora"]);
        Assert.Equal(1e-3, chosen["dual_lora"]);

        string markdown = report.ToMarkdown();
        Assert.Contains("| dual_lora | 990 | 0.001 | 60.0 ± 0.0 | 30.0 ± 14.1 | 45.0 ± 7.1 | +10.0 ± 0.0 | 2/2 |", markdown);
        Assert.Contains("| lora | no | 50.0 | 50.0 | 0.001 |", markdown);
        // The overview: LoRA's overall 30% and 40%, Dual-LoRA's 40% and 50%, ten points above LoRA's on each seed.
        Assert.Contains("| method | r = 4 |\n|---|---:|\n| dual_lora | 45.0 ± 7.1 (+10.0) |\n| lora | 35.0 ± 7.1 |\n", markdown.ReplaceLineEndings("\n"));
        var csv = report.ToCsv().TrimEnd('\n').Split('\n');
        Assert.Equal(9, csv.Length);
        Assert.StartsWith("id,phase,method,vce,rank,budget,adapter_parameters,ranks,learning_rate,seed,split,samples,final_loss,exact_match_name,exact_match_list,exact_match_overall,f1_list,", csv[0]);
    }

    [Fact]
    public void A_plan_reads_back_as_written_and_a_bad_plan_names_its_fault()
    {
        string file = _folder.File("plan.json");
        File.WriteAllText(file, ComparisonPlan.Full.ToJson().ToJsonString());
        var read = ComparisonPlan.Read(file);
        Assert.Empty(read.Differences(ComparisonPlan.Full));
        Assert.Equal(["seeds: [0,1,2] here, [0,1] there"], ComparisonPlan.Full.Differences(ComparisonPlan.Full with { Seeds = [0, 1] }));

        Assert.Contains("must hold lora", Assert.Throws<ArgumentException>(() => (Tiny with { Methods = ["dual_lora"] }).Validate()).Message);
        Assert.Contains("selection rank is 8, not one of the budget ranks [2]", Assert.Throws<ArgumentException>(() => (Tiny with { SelectionRank = 8 }).Validate()).Message);
        File.WriteAllText(file, ComparisonPlan.Full.ToJson().ToJsonString().Replace("\"seeds\":[0,1,2]", "\"seeds\":[0,-1]"));
        var error = Assert.Throws<InvalidFileException>(() => ComparisonPlan.Read(file));
        Assert.Contains(file, error.Message);
        Assert.Contains("seeds[1]", error.Message);
    }
}
