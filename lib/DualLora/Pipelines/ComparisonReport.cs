using System.Globalization;
using System.Text;
using DualLora.IO;

namespace DualLora.Pipelines;

/// <summary>A mean and a sample standard deviation over seeds (the deviation is NaN for one seed).</summary>
public readonly record struct Spread(double Mean, double StandardDeviation, int Count)
{
    public static Spread Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) return new(double.NaN, double.NaN, 0);
        double mean = values.Average();
        double sd = values.Count < 2 ? double.NaN : Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        return new(mean, sd, values.Count);
    }

    /// <summary>Percentages with one decimal: "45.3 ± 1.2" (no ± for one seed).</summary>
    public string Percent() => Count == 0 ? "" : double.IsNaN(StandardDeviation)
        ? (100 * Mean).ToString("F1", CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{100 * Mean:F1} ± {100 * StandardDeviation:F1}");
}

/// <summary>
/// One method in one setting (phase, budget rank, VCE) over its seeds: its size, its rate, its exact match per task and
/// overall (<see cref="Scores"/>), and <see cref="AgainstLora"/>, its overall exact match minus LoRA's of the same seed and
/// setting over the seeds both have (null for LoRA itself or where LoRA has no run), above LoRA's on <see cref="Wins"/> seeds.
/// </summary>
public sealed record ComparisonRow(ComparisonPhase Phase, int Rank, bool Vce, string Method, long Budget, long AdapterParameters, string Ranks, double LearningRate,
    IReadOnlyDictionary<string, Spread> Scores, Spread? AgainstLora, int Wins, Spread FinalLoss);

/// <summary>
/// The comparison's results from its records: one row per run in results.csv, and results.md with an overview (each method's
/// overall exact match at every budget), the learning rates each method chose on the validation split, then per setting (budget, VCE) each method's exact match per task and overall as
/// mean ± standard deviation over the seeds with the paired per-seed difference from LoRA, the equal-rank runs, the
/// ablation and the wall time.
/// </summary>
public sealed class ComparisonReport
{
    public const string CsvFile = "results.csv", MarkdownFile = "results.md";

    public ComparisonPlan Plan { get; }
    public IReadOnlyList<ComparisonRecord> Records { get; }
    /// <summary>The tasks in the order of the first record's scores, without <c>overall</c>.</summary>
    public IReadOnlyList<string> Tasks { get; }

    public ComparisonReport(ComparisonPlan plan, IReadOnlyList<ComparisonRecord> records)
    {
        Plan = plan;
        Records = records;
        Tasks = records.FirstOrDefault(r => r.Split == "evaluation")?.ExactMatch.Keys.Where(k => k != ComparisonRecord.Overall).ToList() ?? [];
    }

    /// <summary>The plan and every record of a report folder.</summary>
    public static ComparisonReport Load(string folder)
    {
        var plan = ComparisonPlan.Read(Path.Combine(folder, Comparison.PlanFile));
        string records = Path.Combine(folder, Comparison.RecordsFolder);
        var list = Directory.Exists(records)
            ? Directory.GetFiles(records, "*.json").Order(StringComparer.Ordinal).Select(ComparisonRecord.Read).ToList()
            : [];
        return new ComparisonReport(plan, list);
    }

    /// <summary>The validation score of every learning rate tried, by method and VCE setting.</summary>
    public IReadOnlyList<(string Method, bool Vce, IReadOnlyDictionary<double, double> Scores, double? Chosen)> Selection() =>
        Records.Where(r => r.Run.Phase == ComparisonPhase.Selection)
            .GroupBy(r => (r.Run.Method, r.Run.Vce))
            .Select(g =>
            {
                var scores = g.ToDictionary(r => r.Run.LearningRate, r => r.OverallExactMatch);
                double? chosen = scores.Count == Plan.LearningRates.Count ? ChooseRate(scores) : null;
                return (g.Key.Method, g.Key.Vce, (IReadOnlyDictionary<double, double>)scores, chosen);
            })
            .ToList();

    /// <summary>The learning rate with the highest validation score (learning rate → overall exact match); on a tie, the lower rate.</summary>
    public static double ChooseRate(IReadOnlyDictionary<double, double> scores) =>
        scores.OrderByDescending(s => s.Value).ThenBy(s => s.Key).First().Key;

    /// <summary>Every method of every setting scored on the evaluation split.</summary>
    public IReadOnlyList<ComparisonRow> Rows()
    {
        var scored = Records.Where(r => r.Run.Phase != ComparisonPhase.Selection).ToList();
        var rows = new List<ComparisonRow>();
        foreach (var setting in scored.GroupBy(r => (r.Run.Phase, r.Run.Rank, r.Run.Vce)))
        {
            // The ablation is compared with Dual-LoRA of the same rank (an evaluation run), the rest with LoRA of the same setting.
            var loraRuns = scored.Where(r => r.Run.Method == ComparisonPlan.Lora && r.Run.Rank == setting.Key.Rank && r.Run.Vce == setting.Key.Vce
                && r.Run.Phase == (setting.Key.Phase == ComparisonPhase.Ablation ? ComparisonPhase.Evaluation : setting.Key.Phase))
                .ToDictionary(r => r.Run.Seed);
            foreach (var method in setting.GroupBy(r => r.Run.Method))
            {
                var runs = method.OrderBy(r => r.Run.Seed).ToList();
                var scores = runs[0].ExactMatch.Keys.ToDictionary(task => task, task => Spread.Of(runs.Select(r => r.ExactMatch.GetValueOrDefault(task, double.NaN)).ToList()));
                var paired = runs.Where(r => loraRuns.ContainsKey(r.Run.Seed)).Select(r => r.OverallExactMatch - loraRuns[r.Run.Seed].OverallExactMatch).ToList();
                bool isLora = method.Key == ComparisonPlan.Lora;
                rows.Add(new ComparisonRow(setting.Key.Phase, setting.Key.Rank, setting.Key.Vce, method.Key, runs[0].Budget, runs[0].AdapterParameters, runs[0].Ranks,
                    runs[0].Run.LearningRate, scores, isLora || paired.Count == 0 ? null : Spread.Of(paired), paired.Count(d => d > 0),
                    Spread.Of(runs.Select(r => r.FinalLoss).ToList())));
            }
        }
        return rows.OrderBy(r => r.Phase).ThenBy(r => r.Rank).ThenBy(r => r.Vce).ThenBy(r => MethodOrder(r.Method)).ToList();
    }

    int MethodOrder(string method)
    {
        int index = Plan.Methods.ToList().IndexOf(method);
        return index >= 0 ? index : Plan.Methods.Count + ComparisonPlan.AblationVariants.Select(v => v.Name).ToList().IndexOf(method);
    }

    /// <summary>Writes results.csv and results.md into <paramref name="folder"/>.</summary>
    public void Write(string folder)
    {
        AtomicFile.WriteAllText(Path.Combine(folder, CsvFile), ToCsv());
        AtomicFile.WriteAllText(Path.Combine(folder, MarkdownFile), ToMarkdown());
    }

    /// <summary>One row per run: the run, its adapter, its final loss, its exact match per task and overall, list F1s, times.</summary>
    public string ToCsv()
    {
        var listTasks = Records.SelectMany(r => r.ListF1.Keys).Distinct().ToList();
        var text = new StringBuilder();
        text.AppendLine(string.Join(",", new[] { "id", "phase", "method", "vce", "rank", "budget", "adapter_parameters", "ranks", "learning_rate", "seed", "split", "samples", "final_loss" }
            .Concat(Tasks.Select(t => "exact_match_" + t)).Append("exact_match_overall").Concat(listTasks.Select(t => "f1_" + t)).Concat(["train_seconds", "seconds"])));
        foreach (var r in Records)
        {
            var cells = new List<string>
            {
                r.Run.Id, ComparisonRunSpec.PhaseName(r.Run.Phase), r.Run.Method, r.Run.Vce ? "true" : "false", Invariant(r.Run.Rank), Invariant(r.Budget),
                Invariant(r.AdapterParameters), Quote(r.Ranks), Invariant(r.Run.LearningRate), Invariant(r.Run.Seed), r.Split, Invariant(r.Samples), Invariant(r.FinalLoss),
            };
            cells.AddRange(Tasks.Select(t => r.ExactMatch.TryGetValue(t, out var v) ? Invariant(v) : ""));
            cells.Add(Invariant(r.OverallExactMatch));
            cells.AddRange(listTasks.Select(t => r.ListF1.TryGetValue(t, out var v) ? Invariant(v) : ""));
            cells.Add(Invariant(Math.Round(r.TrainSeconds, 1)));
            cells.Add(Invariant(Math.Round(r.Seconds, 1)));
            text.AppendLine(string.Join(",", cells));
        }
        return text.ToString();
    }

    public string ToMarkdown()
    {
        var text = new StringBuilder();
        var p = Plan;
        text.AppendLine("# Comparison on the scene suite");
        text.AppendLine();
        text.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Stage 1: {p.Stage1Steps} steps at {p.Stage1LearningRate:G3} (the connector alone, shared by every method of a seed and VCE setting); stage 2: {p.Stage2Steps} steps at the chosen rate for the adapter and a tenth of it for the connector; {p.BatchSize} samples a step; seeds {string.Join(", ", p.Seeds)}. ") +
            $"Exact match (%) by greedy generation: learning rates chosen on the first {p.ValidationScenes} validation scenes ({7 * p.ValidationScenes} samples) with seed {p.Seeds[0]}, " +
            $"methods scored on the first {p.EvaluationScenes} evaluation scenes ({7 * p.EvaluationScenes} samples). Mean ± standard deviation over the seeds; " +
            "Δ LoRA is the paired per-seed difference of the overall exact match from LoRA's (points), with the seeds on which the method is above LoRA.");
        text.AppendLine();

        var allRows = Rows();
        AppendOverview(text, allRows);

        var selection = Selection();
        if (selection.Count > 0)
        {
            text.AppendLine($"## Learning rates (validation split, budget of Dual-LoRA r = {p.SelectionRank}, seed {p.Seeds[0]})");
            text.AppendLine();
            text.AppendLine($"| method | VCE | {string.Join(" | ", p.LearningRates.Select(r => r.ToString("G3", CultureInfo.InvariantCulture)))} | chosen |");
            text.AppendLine($"|---|---|{string.Concat(p.LearningRates.Select(_ => "---:|"))}---:|");
            foreach (var (method, vce, scores, chosen) in selection.OrderBy(s => s.Vce).ThenBy(s => MethodOrder(s.Method)))
                text.AppendLine($"| {method} | {(vce ? "yes" : "no")} | {string.Join(" | ", p.LearningRates.Select(r => scores.TryGetValue(r, out var v) ? (100 * v).ToString("F1", CultureInfo.InvariantCulture) : ""))} | " +
                    $"{chosen?.ToString("G3", CultureInfo.InvariantCulture) ?? "(pending)"} |");
            text.AppendLine();
        }

        foreach (var setting in allRows.GroupBy(r => (r.Phase, r.Rank, r.Vce)))
        {
            var (phase, rank, vce) = setting.Key;
            string title = phase switch
            {
                ComparisonPhase.Evaluation => $"Budget of Dual-LoRA r = {rank} ({setting.First().Budget:N0} parameters), {(vce ? "with" : "without")} VCE",
                ComparisonPhase.EqualRank => $"Equal rank r = {rank} (a mixture's experts share it), {(vce ? "with" : "without")} VCE",
                _ => $"Ablation: Dual-LoRA r = {rank} without its LayerNorm, its ReLU or both, {(vce ? "with" : "without")} VCE (Δ against Dual-LoRA with both)",
            };
            text.AppendLine($"## {title}");
            text.AppendLine();
            text.AppendLine($"| method | parameters | lr | {string.Join(" | ", Tasks)} | overall | Δ {(phase == ComparisonPhase.Ablation ? "Dual-LoRA" : "LoRA")} | seeds above |");
            text.AppendLine($"|---|---:|---:|{string.Concat(Tasks.Select(_ => "---:|"))}---:|---:|---:|");
            var rows = setting.ToList();
            if (phase == ComparisonPhase.Ablation) rows = AgainstDualLora(allRows, rows, rank, vce);
            foreach (var row in rows)
                text.AppendLine($"| {row.Method} | {row.AdapterParameters:N0} | {row.LearningRate.ToString("G3", CultureInfo.InvariantCulture)} | " +
                    $"{string.Join(" | ", Tasks.Select(t => row.Scores.TryGetValue(t, out var s) ? s.Percent() : ""))} | {row.Scores[ComparisonRecord.Overall].Percent()} | " +
                    $"{(row.AgainstLora is { } d ? Signed(d) : "")} | {(row.AgainstLora is { } a ? $"{row.Wins}/{a.Count}" : "")} |");
            text.AppendLine();
        }

        var done = Records.Count;
        double hours = Records.Sum(r => r.Seconds) / 3600;
        text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Wall time: {done} runs, {hours:F2} h of stage-2 training and evaluation (stage 1 not included)."));
        return text.ToString();
    }

    /// <summary>The comparison at a glance: each method's overall exact match at every budget, without and with VCE.</summary>
    void AppendOverview(StringBuilder text, IReadOnlyList<ComparisonRow> allRows)
    {
        var rows = allRows.Where(r => r.Phase == ComparisonPhase.Evaluation).ToList();
        var settings = rows.Select(r => (r.Rank, r.Vce)).Distinct().OrderBy(s => s.Rank).ThenBy(s => s.Vce).ToList();
        if (settings.Count == 0) return;
        text.AppendLine("## Overview: overall exact match (%) at each budget");
        text.AppendLine();
        text.AppendLine("Mean ± standard deviation over the seeds; in brackets the paired per-seed difference from LoRA (points).");
        text.AppendLine();
        text.AppendLine($"| method | {string.Join(" | ", settings.Select(s => $"r = {s.Rank}{(s.Vce ? ", VCE" : "")}"))} |");
        text.AppendLine($"|---|{string.Concat(settings.Select(_ => "---:|"))}");
        foreach (string method in rows.Select(r => r.Method).Distinct().OrderBy(MethodOrder))
        {
            var cells = settings.Select(s => rows.FirstOrDefault(r => r.Rank == s.Rank && r.Vce == s.Vce && r.Method == method) is { } row
                ? row.Scores[ComparisonRecord.Overall].Percent() + (row.AgainstLora is { } d ? string.Create(CultureInfo.InvariantCulture, $" ({100 * d.Mean:+0.0;-0.0;0.0})") : "")
                : "");
            text.AppendLine($"| {method} | {string.Join(" | ", cells)} |");
        }
        text.AppendLine();
    }

    /// <summary>The ablation's rows, with Dual-LoRA (both switches, the evaluation run of the same rank) first and every Δ taken against it.</summary>
    List<ComparisonRow> AgainstDualLora(IReadOnlyList<ComparisonRow> allRows, List<ComparisonRow> variants, int rank, bool vce)
    {
        var reference = Records.Where(r => r.Run.Phase == ComparisonPhase.Evaluation && r.Run.Method == ComparisonPlan.DualLora && r.Run.Rank == rank && r.Run.Vce == vce)
            .ToDictionary(r => r.Run.Seed);
        var both = allRows.FirstOrDefault(r => r.Phase == ComparisonPhase.Evaluation && r.Method == ComparisonPlan.DualLora && r.Rank == rank && r.Vce == vce);
        var result = new List<ComparisonRow>();
        if (both != null) result.Add(both with { AgainstLora = null, Wins = 0 });
        foreach (var row in variants)
        {
            var runs = Records.Where(r => r.Run.Phase == ComparisonPhase.Ablation && r.Run.Method == row.Method && r.Run.Rank == rank && r.Run.Vce == vce && reference.ContainsKey(r.Run.Seed)).ToList();
            var paired = runs.Select(r => r.OverallExactMatch - reference[r.Run.Seed].OverallExactMatch).ToList();
            result.Add(row with { AgainstLora = paired.Count == 0 ? null : Spread.Of(paired), Wins = paired.Count(d => d > 0) });
        }
        return result;
    }

    static string Signed(Spread difference) => double.IsNaN(difference.StandardDeviation)
        ? string.Create(CultureInfo.InvariantCulture, $"{100 * difference.Mean:+0.0;-0.0;0.0}")
        : string.Create(CultureInfo.InvariantCulture, $"{100 * difference.Mean:+0.0;-0.0;0.0} ± {100 * difference.StandardDeviation:F1}");

    static string Invariant(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);

    static string Quote(string text) => text.Contains(',') || text.Contains('"') ? $"\"{text.Replace("\"", "\"\"")}\"" : text;
}
