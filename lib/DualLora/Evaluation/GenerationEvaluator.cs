using DualLora.Data;
using DualLora.Multimodal;
using Microsoft.ML.Tokenizers;
using static TorchSharp.torch;

namespace DualLora.Evaluation;

/// <summary>How an evaluation generates and which kinds it gives tasks.</summary>
/// <param name="BatchSize">Prompts generated together.</param>
/// <param name="MaxNewTokens">The longest answer generated, in tokens.</param>
public sealed record EvaluationOptions(int BatchSize = 16, int MaxNewTokens = 64)
{
    /// <summary>Answer kinds by task name, overriding what <see cref="AnswerKinds.Infer"/> guesses from the references.</summary>
    public IReadOnlyDictionary<string, AnswerKind>? Kinds { get; init; }
    /// <summary>ROUGE-L's β (1: the balanced F-measure).</summary>
    public double RougeBeta { get; init; } = RougeL.DefaultBeta;
}

/// <summary>
/// Generation-based evaluation: each sample's prompt is its conversation up to the last answer (the collator's
/// <see cref="InstructionCollator.PromptIds"/>), the reference is that last gpt turn, and the model answers greedily
/// with the key/value cache (<see cref="LlavaGeneration"/>) until <c>&lt;/s&gt;</c> or the token limit. A sample's task is
/// its <c>"task"</c> field, or <see cref="NoTask"/> when it has none.
/// </summary>
public sealed class GenerationEvaluator
{
    /// <summary>The task of samples without a <c>"task"</c> field.</summary>
    public const string NoTask = "all";
    /// <summary>The sample field that names its task, as the scene suite's files write it.</summary>
    public const string TaskField = "task";

    readonly LlavaModel _model;
    readonly Tokenizer _tokenizer;
    readonly InstructionCollator _collator;

    public EvaluationOptions Options { get; }

    /// <param name="model">The model that answers.</param>
    /// <param name="tokenizer">Decodes the answers; the one <paramref name="collator"/> encodes with.</param>
    /// <param name="collator">Builds the prompts and knows the end-of-sequence and pad ids and the image preprocessing.</param>
    /// <param name="options">Batch size, token limit, answer kinds.</param>
    public GenerationEvaluator(LlavaModel model, Tokenizer tokenizer, InstructionCollator collator, EvaluationOptions? options = null)
    {
        Options = options ?? new EvaluationOptions();
        if (Options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.BatchSize, "BatchSize must be at least 1.");
        if (Options.MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.MaxNewTokens, "MaxNewTokens must be at least 1.");
        _model = model;
        _tokenizer = tokenizer;
        _collator = collator;
    }

    /// <summary>Evaluates samples of <paramref name="data"/> (all of them by default), decoding their images as the collator preprocesses them.</summary>
    public EvaluationResult Evaluate(LlavaInstructionData data, IReadOnlyList<InstructionSample>? samples = null) =>
        Evaluate(samples ?? data.Samples, sample => data.Image(sample, _collator.Preprocessing));

    /// <summary>
    /// Evaluates <paramref name="samples"/>; <paramref name="loadImage"/> gives an image sample's preprocessed
    /// (channels, size, size) image. A text-only sample gets the collator's all-zero image.
    /// </summary>
    public EvaluationResult Evaluate(IReadOnlyList<InstructionSample> samples, Func<InstructionSample, Tensor> loadImage)
    {
        if (samples.Count == 0) throw new ArgumentException("no samples to evaluate.", nameof(samples));
        // Batches hold one task where they can: a batch generates until its longest answer ends, so a short-answer
        // task batched with a list task would wait for the list. The predictions keep the samples' order.
        var order = samples.Select((sample, index) => (Sample: sample, Index: index)).OrderBy(s => TaskOf(s.Sample), StringComparer.Ordinal).ThenBy(s => s.Index).ToList();
        var predictions = new Prediction[samples.Count];
        for (int start = 0; start < order.Count; start += Options.BatchSize)
        {
            var positions = order.Skip(start).Take(Options.BatchSize).ToList();
            var batch = positions.Select(p => p.Sample).ToList();
            using var scope = NewDisposeScope();
            var prompts = batch.Select(_collator.PromptIds).ToList();
            var pixels = stack(batch.Select(sample => Image(sample, loadImage)).ToArray());
            var answers = LlavaGeneration.Generate(_model, prompts, pixels, Options.MaxNewTokens, _collator.EndOfSentenceId, _collator.PadId);
            for (int i = 0; i < batch.Count; i++)
                predictions[positions[i].Index] = new Prediction(batch[i].Id, TaskOf(batch[i]), PromptText(prompts[i]), Reference(batch[i]), Decode(answers[i]).Trim());
        }
        return EvaluationResult.Score(predictions, Options.Kinds, Options.RougeBeta);
    }

    /// <summary>The sample's <c>"task"</c> field, or <see cref="NoTask"/>.</summary>
    public static string TaskOf(InstructionSample sample) =>
        sample.Extra.TryGetValue(TaskField, out var task) && !string.IsNullOrWhiteSpace(task) ? task : NoTask;

    /// <summary>The last gpt turn, which the prompt stops before.</summary>
    public static string Reference(InstructionSample sample) =>
        sample.Turns.LastOrDefault(turn => turn.IsAnswer)?.Text
        ?? throw new ArgumentException($"sample \"{sample.Id}\" has no gpt turn to use as the reference.", nameof(sample));

    Tensor Image(InstructionSample sample, Func<InstructionSample, Tensor> loadImage)
    {
        var preprocessing = _collator.Preprocessing;
        long[] shape = [preprocessing.Channels, preprocessing.ImageSize, preprocessing.ImageSize];
        if (!sample.HasImage) return zeros(shape);
        var image = loadImage(sample);
        if (!image.shape.SequenceEqual(shape))
            throw new ArgumentException($"sample \"{sample.Id}\": image of shape [{string.Join(", ", image.shape)}], expected [{string.Join(", ", shape)}] from the collator's preprocessing.");
        return image;
    }

    string Decode(IEnumerable<long> ids) => _tokenizer.Decode(ids.Select(id => (int)id)) ?? "";

    /// <summary>
    /// The prompt as text (special tokens left out), the image written as <c>&lt;image&gt;</c> where its tokens go, for
    /// reading the predictions by hand. The text is decoded whole and the placeholder inserted after the part
    /// before it, because decoding the part after it alone would drop its leading space.
    /// </summary>
    string PromptText(long[] ids)
    {
        int image = Array.IndexOf(ids, LlavaConfig.ImageTokenId);
        string before = Decode(ids[..image]), whole = Decode(ids.Where(id => id != LlavaConfig.ImageTokenId));
        return whole.StartsWith(before, StringComparison.Ordinal)
            ? before + InstructionSample.ImagePlaceholder + whole[before.Length..]
            : before + InstructionSample.ImagePlaceholder + Decode(ids[(image + 1)..]);
    }
}
