using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using DualLora.IO;

namespace DualLora.Evaluation;

/// <summary>A generated answer to score: the sample's id and task, the prompt as the model saw it, the reference and the prediction.</summary>
public sealed record Prediction(string Id, string Task, string Prompt, string Reference, string Text);

/// <summary>
/// One sample's metric values; null where its task's <see cref="AnswerKind"/> does not get the metric. BLEU here is
/// the smoothed sentence BLEU (<see cref="Bleu.Sentence"/>); a task's BLEU is the corpus BLEU of its pairs, not a mean.
/// </summary>
public sealed record SampleScores(double ExactMatch, double? Precision = null, double? Recall = null, double? F1 = null,
    double? Order = null, double? SentenceBleu = null, double? RougeL = null);

/// <summary>A prediction with its task's answer kind and its scores: one line of <c>predictions.jsonl</c>.</summary>
public sealed record ScoredPrediction(Prediction Prediction, AnswerKind Kind, SampleScores Scores);

/// <summary>
/// One row of the per-task table. <see cref="ExactMatch"/>, the list metrics and <see cref="RougeL"/> are means of
/// the samples' values; <see cref="Bleu"/> is corpus BLEU-4 over the task's pairs (<see cref="Evaluation.Bleu.Corpus"/>).
/// The overall row has no kind and only exact match (over all samples, so larger tasks weigh more).
/// </summary>
public sealed record TaskScores(string Task, int Count, AnswerKind? Kind, double ExactMatch, double? Precision = null, double? Recall = null,
    double? F1 = null, double? Order = null, double? Bleu = null, double? RougeL = null);

/// <summary>
/// Scored predictions and the per-task table. <see cref="Write"/> puts both beside each other in a folder, so
/// every number in <c>metrics.json</c> can be recomputed from <c>predictions.jsonl</c>.
/// </summary>
public sealed class EvaluationResult
{
    /// <summary>The task name of the row over all samples.</summary>
    public const string OverallTask = "overall";
    public const string PredictionsFile = "predictions.jsonl", MetricsFile = "metrics.json";

    public IReadOnlyList<ScoredPrediction> Predictions { get; }
    /// <summary>One row per task, in the order tasks first appear.</summary>
    public IReadOnlyList<TaskScores> Tasks { get; }
    public TaskScores Overall { get; }
    /// <summary>The tasks, then the overall row: the table as shown.</summary>
    public IReadOnlyList<TaskScores> Rows => [.. Tasks, Overall];

    EvaluationResult(IReadOnlyList<ScoredPrediction> predictions, IReadOnlyList<TaskScores> tasks, TaskScores overall)
    {
        Predictions = predictions;
        Tasks = tasks;
        Overall = overall;
    }

    /// <summary>
    /// Scores <paramref name="predictions"/>. A task's kind is <paramref name="kinds"/>' entry for it if there is one,
    /// else inferred from its references (<see cref="AnswerKinds.Infer"/>).
    /// </summary>
    public static EvaluationResult Score(IReadOnlyList<Prediction> predictions, IReadOnlyDictionary<string, AnswerKind>? kinds = null,
        double rougeBeta = RougeL.DefaultBeta)
    {
        if (predictions.Count == 0) throw new ArgumentException("no predictions to score.", nameof(predictions));
        var scored = new ScoredPrediction[predictions.Count];
        var tasks = new List<TaskScores>();
        foreach (var group in predictions.Select((prediction, index) => (prediction, index)).GroupBy(p => p.prediction.Task))
        {
            var members = group.ToList();
            var kind = kinds is not null && kinds.TryGetValue(group.Key, out var given)
                ? given
                : AnswerKinds.Infer(members.Select(m => m.prediction.Reference).ToList());
            foreach (var (prediction, index) in members)
                scored[index] = new ScoredPrediction(prediction, kind, ScoreSample(prediction.Text, prediction.Reference, kind, rougeBeta));

            var scores = members.Select(m => scored[m.index].Scores).ToList();
            double? Mean(Func<SampleScores, double?> metric) => metric(scores[0]) is null ? null : scores.Average(s => metric(s)!.Value);
            tasks.Add(new TaskScores(group.Key, members.Count, kind, scores.Average(s => s.ExactMatch),
                Mean(s => s.Precision), Mean(s => s.Recall), Mean(s => s.F1), Mean(s => s.Order),
                kind == AnswerKind.FreeText ? Bleu.Corpus(members.Select(m => (m.prediction.Text, m.prediction.Reference)).ToList()) : null,
                Mean(s => s.RougeL)));
        }
        var overall = new TaskScores(OverallTask, scored.Length, null, scored.Average(s => s.Scores.ExactMatch));
        return new EvaluationResult(scored, tasks, overall);
    }

    /// <summary>Exact match for every kind, plus the kind's own metrics.</summary>
    public static SampleScores ScoreSample(string prediction, string reference, AnswerKind kind, double rougeBeta = RougeL.DefaultBeta)
    {
        double exact = ExactMatch.Score(prediction, reference);
        switch (kind)
        {
            case AnswerKind.List:
                var (precision, recall, f1) = ListMetrics.Overlap(prediction, reference);
                return new SampleScores(exact, precision, recall, f1, Order: ListMetrics.Order(prediction, reference));
            case AnswerKind.FreeText:
                return new SampleScores(exact, SentenceBleu: Bleu.Sentence(prediction, reference), RougeL: RougeL.Score(prediction, reference, rougeBeta));
            default:
                return new SampleScores(exact);
        }
    }

    /// <summary>
    /// Writes <c>predictions.jsonl</c> (one JSON object a line: id, task, kind, prompt, reference, prediction and the
    /// sample's metric values) and <c>metrics.json</c> (the per-task rows and the overall row) into
    /// <paramref name="folder"/>, each atomically.
    /// </summary>
    public void Write(string folder)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.Write(Path.Combine(folder, PredictionsFile), stream =>
        {
            foreach (var (prediction, kind, scores) in Predictions)
            {
                using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = Readable }))
                {
                    json.WriteStartObject();
                    json.WriteString("id", prediction.Id);
                    json.WriteString("task", prediction.Task);
                    json.WriteString("kind", KindName(kind));
                    json.WriteString("prompt", prediction.Prompt);
                    json.WriteString("reference", prediction.Reference);
                    json.WriteString("prediction", prediction.Text);
                    json.WriteNumber("exact_match", scores.ExactMatch);
                    WriteOptional(json, "precision", scores.Precision);
                    WriteOptional(json, "recall", scores.Recall);
                    WriteOptional(json, "f1", scores.F1);
                    WriteOptional(json, "order", scores.Order);
                    WriteOptional(json, "sentence_bleu", scores.SentenceBleu);
                    WriteOptional(json, "rouge_l", scores.RougeL);
                    json.WriteEndObject();
                }
                stream.WriteByte((byte)'\n');
            }
        });
        AtomicFile.Write(Path.Combine(folder, MetricsFile), stream =>
        {
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = Readable });
            json.WriteStartObject();
            json.WriteStartArray("tasks");
            foreach (var row in Tasks) WriteRow(json, row);
            json.WriteEndArray();
            json.WritePropertyName("overall");
            WriteRow(json, Overall);
            json.WriteEndObject();
        });
    }

    // Files meant to be read by hand: "<image>" and non-ASCII text as written, not as \u escapes (still valid JSON).
    static readonly JavaScriptEncoder Readable = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    static void WriteRow(Utf8JsonWriter json, TaskScores row)
    {
        json.WriteStartObject();
        json.WriteString("task", row.Task);
        json.WriteNumber("n", row.Count);
        if (row.Kind is { } kind) json.WriteString("kind", KindName(kind));
        json.WriteNumber("exact_match", row.ExactMatch);
        WriteOptional(json, "precision", row.Precision);
        WriteOptional(json, "recall", row.Recall);
        WriteOptional(json, "f1", row.F1);
        WriteOptional(json, "order", row.Order);
        WriteOptional(json, "bleu", row.Bleu);
        WriteOptional(json, "rouge_l", row.RougeL);
        json.WriteEndObject();
    }

    static void WriteOptional(Utf8JsonWriter json, string name, double? value)
    {
        if (value is { } v) json.WriteNumber(name, v);
    }

    /// <summary>The kind as the JSON files write it: short, list, free_text.</summary>
    public static string KindName(AnswerKind kind) => kind switch
    {
        AnswerKind.List => "list",
        AnswerKind.FreeText => "free_text",
        _ => "short",
    };

    /// <summary>The per-task table in Markdown, scores in percent with one decimal; a metric a task does not get is blank.</summary>
    public string ToMarkdown()
    {
        var text = new StringBuilder("| task | n | kind | exact match | precision | recall | F1 | order | BLEU-4 | ROUGE-L |\n");
        text.Append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
        static string Percent(double? value) => value is { } v ? (100 * v).ToString("F1", CultureInfo.InvariantCulture) : "";
        foreach (var row in Rows)
        {
            string kind = row.Kind is { } k ? KindName(k) : "";
            text.Append($"| {row.Task} | {row.Count} | {kind} | {Percent(row.ExactMatch)} | {Percent(row.Precision)} | {Percent(row.Recall)} | ")
                .Append($"{Percent(row.F1)} | {Percent(row.Order)} | {Percent(row.Bleu)} | {Percent(row.RougeL)} |\n");
        }
        return text.ToString();
    }

    public override string ToString() => ToMarkdown();
}
