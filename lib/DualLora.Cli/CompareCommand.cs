using System.Globalization;
using DualLora.Data;
using DualLora.Display;
using DualLora.IO;
using DualLora.Pipelines;
using DualLora.Runtime;

namespace DualLora.Cli;

/// <summary>
/// <c>compare</c>: the comparison of the adapters on the scene suite (<see cref="Comparison"/>) with the plan of a profile,
/// the suite exported first when no data folder is given; prints each run as it ends, then the report, and draws the
/// stage-2 training curves. Started again with the same folders, it continues where it stopped.
/// </summary>
static class CompareCommand
{
    public static int Run(Options options, TextWriter output)
    {
        if (options.Positional.Count > 0) throw new UsageException($"compare takes no file arguments (got '{options.Positional[0]}').");
        var environment = RuntimeEnvironment.Find();
        string root = Path.GetDirectoryName(environment.SourceFile)!;
        var profile = Commands.ParseProfile(options) ?? environment.Profile;
        var plan = ComparisonPlan.For(profile);
        if (options.Value("--seeds") is not null) plan = plan with { Seeds = [.. Enumerable.Range(0, options.Integer("--seeds", 3)).Select(s => (long)s)] };
        string name = profile.ToString().ToLowerInvariant();
        string outFolder = Path.GetFullPath(options.Value("--out") ?? Path.Combine(environment.Data.Runs, $"compare-{name}"));
        string report = Path.GetFullPath(options.Value("--report") ?? outFolder);
        string model = Path.GetFullPath(options.Value("--model") ?? Path.Combine(root, "data", "pretrained", "small-llava"));
        var device = environment.Apply();
        string data = options.Value("--data") is { } given ? Path.GetFullPath(given) : Export(environment, plan, Path.Combine(outFolder, "scenes"), output);

        output.WriteLine($"compare: profile {name}, {plan.Methods.Count} methods x VCE [{string.Join(", ", plan.Vce.Select(v => v ? "on" : "off"))}] x budgets of Dual-LoRA r = " +
            $"[{string.Join(", ", plan.BudgetRanks)}] x {plan.Seeds.Count} seeds, learning rates [{string.Join(", ", plan.LearningRates.Select(r => r.ToString("G3", CultureInfo.InvariantCulture)))}], " +
            $"{plan.Stage1Steps} + {plan.Stage2Steps} steps of {plan.BatchSize}; on {device}");
        output.WriteLine($"  model {model}\n  data {data}\n  runs {outFolder}\n  report {report}");
        var comparison = new Comparison(plan, new ComparisonFolders(model, data, outFolder, report), device, output.WriteLine);
        var result = comparison.Run();
        foreach (var (vce, file) in WriteCurves(result, report)) output.WriteLine($"curves ({(vce ? "with" : "without")} VCE): {file}");
        output.WriteLine();
        output.WriteLine(result.ToMarkdown());
        return 0;
    }

    /// <summary>The scene suite (seed 0) with the plan's sizes, exported once into <paramref name="folder"/>.</summary>
    static string Export(RuntimeEnvironment environment, ComparisonPlan plan, string folder, TextWriter output)
    {
        if (File.Exists(Path.Combine(folder, "evaluation.json"))) return folder;
        using var source = FashionMnist.Load(environment, FashionMnistSplit.Test);
        SceneSuiteExport.Write(SceneSuite.Build(source, new SceneSuiteOptions(0, plan.TrainingScenes, plan.ValidationScenes, plan.EvaluationScenes)), source, folder);
        output.WriteLine($"compare: exported the scene suite to {folder}");
        return folder;
    }

    /// <summary>
    /// Stage 2's loss at the selection budget for each method, the mean over the seeds, one chart per VCE setting,
    /// as SVG files beside the report (curves-vce.svg, curves-novce.svg).
    /// </summary>
    public static IReadOnlyList<(bool Vce, string File)> WriteCurves(ComparisonReport report, string folder)
    {
        var files = new List<(bool, string)>();
        foreach (var vce in report.Plan.Vce)
        {
            var series = report.Records
                .Where(r => r.Run.Phase == ComparisonPhase.Evaluation && r.Run.Rank == report.Plan.SelectionRank && r.Run.Vce == vce && r.LossCurve.Count > 0)
                .GroupBy(r => r.Run.Method)
                .Select(g => new Series(g.Key, g.First().LossCurve.Select(p => (double)p.Step).ToList(),
                    Enumerable.Range(0, g.Min(r => r.LossCurve.Count)).Select(i => g.Average(r => r.LossCurve[i].Loss)).ToList()))
                .ToArray();
            if (series.Length == 0) continue;
            var chart = Charts.Lines($"Stage-2 training loss, budget of Dual-LoRA r = {report.Plan.SelectionRank}, {(vce ? "with" : "without")} VCE (mean over {report.Plan.Seeds.Count} seeds)",
                "optimizer step", "loss (window mean)", series);
            string file = Path.Combine(folder, $"curves-{(vce ? "vce" : "novce")}.svg");
            AtomicFile.WriteAllText(file, chart.ToSvg());
            files.Add((vce, file));
        }
        return files;
    }
}
