using DualLora.Multimodal;
using Microsoft.ML.Tokenizers;
using static TorchSharp.torch;

namespace DualLora.Data;

/// <summary>
/// Turns instruction samples and their preprocessed images into a <see cref="MultimodalBatch"/> for training.
/// <para>
/// The template is notebook 08's, LLaVA-1.5's <c>USER: ... ASSISTANT: ...&lt;/s&gt;</c> without a system
/// prompt: <c>&lt;s&gt;USER:&lt;image&gt; {q1} ASSISTANT: {a1}&lt;/s&gt;USER: {q2} ASSISTANT: {a2}&lt;/s&gt;...</c>. The
/// <c>&lt;image&gt;</c> placeholder is removed from the first human turn wherever the file puts it and placed at
/// the turn's start, as LLaVA's <c>preprocess_multimodal</c> does; it becomes the single id
/// <see cref="LlavaConfig.ImageTokenId"/>. After it comes a space, as in notebook 08, rather than LLaVA's
/// newline, which a small vocabulary need not have.
/// </para>
/// <para>
/// Each part is encoded on its own (<c>USER:</c>, the rest of the first prompt up to <c>ASSISTANT:</c>, each
/// answer with its leading space, each later prompt), so the boundary between masked and learned tokens is
/// exact. Every answer's tokens and its <c>&lt;/s&gt;</c> are learned; <c>&lt;s&gt;</c>, prompts, the placeholder and
/// padding are labelled −100. Sequences are right-padded with the pad id (attention mask 0) and cut after
/// <see cref="MaxLength"/> ids, the placeholder counting as one (the decoder sees it as the image's tokens).
/// </para>
/// <para>
/// A text-only sample gets the placeholder too and an all-zero image (zero after preprocessing, LLaVA's
/// stand-in for a missing image), because <see cref="LlavaModel"/> needs exactly one placeholder per sequence.
/// Unlike LLaVA, which splices no image tokens for such a sample, the decoder here attends to the blank
/// image's tokens; they are never learned (label −100).
/// </para>
/// </summary>
public sealed class InstructionCollator
{
    const string UserPrefix = "USER:", AssistantSuffix = " ASSISTANT:";

    readonly Tokenizer _tokenizer;

    public int BeginningOfSentenceId { get; }
    public int EndOfSentenceId { get; }
    /// <summary>The id padding positions carry; never learned and never attended to.</summary>
    public int PadId { get; }
    /// <summary>The preprocessing images are expected in; it sizes the zero image of text-only samples.</summary>
    public ImagePreprocessing Preprocessing { get; }
    /// <summary>The longest sequence of input ids kept (METHOD.md §4's recipe: 2048).</summary>
    public int MaxLength { get; }

    /// <summary>
    /// A collator over any tokenizer: it encodes each part of the template and must not add special tokens of
    /// its own (a <see cref="SentencePieceTokenizer"/> is asked not to); the collator adds <c>&lt;s&gt;</c> and <c>&lt;/s&gt;</c>.
    /// </summary>
    public InstructionCollator(Tokenizer tokenizer, int beginningOfSentenceId, int endOfSentenceId, int padId, ImagePreprocessing preprocessing, int maxLength = 2048)
    {
        if (maxLength < 1) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "the maximum length must be at least 1.");
        _tokenizer = tokenizer;
        BeginningOfSentenceId = beginningOfSentenceId;
        EndOfSentenceId = endOfSentenceId;
        PadId = padId;
        Preprocessing = preprocessing;
        MaxLength = maxLength;
    }

    /// <summary>A LLaMA-style SentencePiece tokenizer's <c>&lt;s&gt;</c> and <c>&lt;/s&gt;</c>, and <c>&lt;unk&gt;</c> as the pad, as LLaVA pads LLaMA.</summary>
    public static InstructionCollator For(SentencePieceTokenizer tokenizer, ImagePreprocessing preprocessing, int maxLength = 2048) =>
        new(tokenizer, tokenizer.BeginningOfSentenceId, tokenizer.EndOfSentenceId, tokenizer.UnknownId, preprocessing, maxLength);

    /// <summary>The whole conversation as input ids and labels, before truncation.</summary>
    public (long[] InputIds, long[] Labels) Tokenize(InstructionSample sample) => Tokenize(sample, sample.Turns.Count);

    /// <summary>
    /// The input ids of a generation prompt: the conversation up to its last answer, ending with
    /// <c>ASSISTANT:</c>, so the model writes that answer.
    /// </summary>
    public long[] PromptIds(InstructionSample sample)
    {
        int lastAnswer = sample.Turns.Count - 1;
        while (lastAnswer >= 0 && !sample.Turns[lastAnswer].IsAnswer) lastAnswer--;
        if (lastAnswer < 0) throw new ArgumentException($"sample \"{sample.Id}\" has no answer to prompt for.", nameof(sample));
        return Tokenize(sample, lastAnswer).InputIds;
    }

    (long[] InputIds, long[] Labels) Tokenize(InstructionSample sample, int turns)
    {
        var ids = new List<long> { BeginningOfSentenceId };
        var labels = new List<long> { LlavaConfig.IgnoreIndex };
        void Add(IEnumerable<long> part, bool learned)
        {
            foreach (var id in part)
            {
                ids.Add(id);
                labels.Add(learned ? id : LlavaConfig.IgnoreIndex);
            }
        }

        for (var turn = 0; turn < turns; turn++)
        {
            var text = sample.Turns[turn].Text;
            if (sample.Turns[turn].IsAnswer)
            {
                Add(Encode(" " + text).Append(EndOfSentenceId), learned: true);
            }
            else if (turn == 0)
            {
                var question = text.Replace(InstructionSample.ImagePlaceholder, "", StringComparison.Ordinal).Trim();
                Add(Encode(UserPrefix), learned: false);
                Add([LlavaConfig.ImageTokenId], learned: false);
                Add(Encode(" " + question + AssistantSuffix), learned: false);
            }
            else
            {
                Add(Encode(UserPrefix + " " + text + AssistantSuffix), learned: false);
            }
        }
        return (ids.ToArray(), labels.ToArray());
    }

    /// <summary>
    /// Collates <paramref name="samples"/> with <paramref name="images"/>, one per sample: its preprocessed
    /// (channels, size, size) image, or null for a text-only sample. A sample whose answers truncation cuts
    /// away entirely is an error naming it: an <see cref="InstructionSampleException"/> naming <paramref name="dataFile"/>
    /// too when the samples come from that file, else an <see cref="ArgumentException"/>.
    /// </summary>
    public InstructionBatch Collate(IReadOnlyList<InstructionSample> samples, IReadOnlyList<Tensor?> images, string? dataFile = null)
    {
        if (samples.Count == 0) throw new ArgumentException("no samples to collate.", nameof(samples));
        if (images.Count != samples.Count) throw new ArgumentException($"{samples.Count} samples but {images.Count} images.", nameof(images));

        var sequences = new List<(long[] Ids, long[] Labels)>();
        var truncated = new List<string>();
        foreach (var sample in samples)
        {
            var (ids, labels) = Tokenize(sample);
            if (ids.Length > MaxLength)
            {
                truncated.Add(sample.Id);
                ids = ids[..MaxLength];
                labels = labels[..MaxLength];
                if (labels.All(label => label == LlavaConfig.IgnoreIndex))
                {
                    string fault = $"its first answer token comes after the maximum length of {MaxLength} ids, so truncation leaves nothing to learn.";
                    throw dataFile is null ? new ArgumentException($"sample \"{sample.Id}\": {fault}", nameof(samples))
                        : new InstructionSampleException(SampleFault.NoAnswerWithinMaxLength, dataFile, sample.Id, fault);
                }
            }
            sequences.Add((ids, labels));
        }

        var length = sequences.Max(s => s.Ids.Length);
        var inputIds = new long[samples.Count * length];
        var mask = new long[samples.Count * length];
        var targets = new long[samples.Count * length];
        Array.Fill(inputIds, PadId);
        Array.Fill(targets, LlavaConfig.IgnoreIndex);
        for (var row = 0; row < samples.Count; row++)
        {
            var (ids, labels) = sequences[row];
            ids.CopyTo(inputIds, row * length);
            labels.CopyTo(targets, row * length);
            Array.Fill(mask, 1L, row * length, ids.Length);
        }

        using var scope = NewDisposeScope();
        var pixels = stack(samples.Select((sample, i) => Image(sample, images[i])).ToArray());
        var batch = new MultimodalBatch(
            tensor(inputIds, [samples.Count, length]).MoveToOuterDisposeScope(),
            tensor(mask, [samples.Count, length]).MoveToOuterDisposeScope(),
            pixels.MoveToOuterDisposeScope(),
            tensor(targets, [samples.Count, length]).MoveToOuterDisposeScope());
        return new InstructionBatch(batch, truncated);
    }

    /// <summary>Collates samples of <paramref name="data"/>, decoding their images with <see cref="Preprocessing"/>.</summary>
    public InstructionBatch Collate(LlavaInstructionData data, IReadOnlyList<InstructionSample> samples)
    {
        using var scope = NewDisposeScope();
        var images = samples.Select(sample => sample.HasImage ? data.Image(sample, Preprocessing) : null).ToList();
        var collated = Collate(samples, images, data.File);
        collated.Batch.InputIds.MoveToOuterDisposeScope();
        collated.Batch.AttentionMask.MoveToOuterDisposeScope();
        collated.Batch.Pixels.MoveToOuterDisposeScope();
        collated.Batch.Labels!.MoveToOuterDisposeScope();
        return collated;
    }

    Tensor Image(InstructionSample sample, Tensor? image)
    {
        long[] shape = [Preprocessing.Channels, Preprocessing.ImageSize, Preprocessing.ImageSize];
        if (!sample.HasImage)
        {
            if (image is not null) throw new ArgumentException($"sample \"{sample.Id}\" is text-only but was given an image.");
            return zeros(shape);
        }
        if (image is null) throw new ArgumentException($"sample \"{sample.Id}\" has an image but none was given.");
        if (!image.shape.SequenceEqual(shape))
            throw new ArgumentException($"sample \"{sample.Id}\": image of shape [{string.Join(", ", image.shape)}], expected [{string.Join(", ", shape)}] from the preprocessing.");
        return image;
    }

    IReadOnlyList<long> Encode(string text) =>
        (_tokenizer is SentencePieceTokenizer sentencePiece
            ? sentencePiece.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false)
            : _tokenizer.EncodeToIds(text)).Select(id => (long)id).ToList();
}
