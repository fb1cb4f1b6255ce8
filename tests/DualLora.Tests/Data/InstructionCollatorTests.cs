using DualLora.Data;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;
using Microsoft.ML.Tokenizers;
using SkiaSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Data;

public sealed class InstructionCollatorTests : IDisposable
{
    const long Bos = 1, Eos = 2, Pad = 0, Image = LlavaConfig.ImageTokenId, Ignore = LlavaConfig.IgnoreIndex;

    // A character-level vocabulary, as notebook 08's: no two pieces merge, so every character is one token
    // and id = 3 + its index here (0, 1, 2 are <unk>, <s>, </s>).
    const string Alphabet = "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:?.,!";

    /// <summary>The ids of a text already in SentencePiece form (spaces as ▁), one per character.</summary>
    static long[] Chars(string pieces) => pieces.Select(c => (long)(3 + Alphabet.IndexOf(c))).ToArray();

    static long[] Ignored(int count) => Enumerable.Repeat(Ignore, count).ToArray();

    // Multi-turn with the placeholder before the text, text-only, and the placeholder after the text.
    const string HandWritten = """
        [
          {"id": "multi", "image": "a.png",
           "conversations": [
             {"from": "human", "value": "<image>\nHow many?"},
             {"from": "gpt", "value": "Two."},
             {"from": "human", "value": "And bags?"},
             {"from": "gpt", "value": "One."}]},
          {"id": "text", "conversations": [{"from": "human", "value": "Say yes."}, {"from": "gpt", "value": "Yes."}]},
          {"id": "after", "image": "b.png",
           "conversations": [{"from": "human", "value": "Top left?\n<image>"}, {"from": "gpt", "value": "A shirt."}]}
        ]
        """;

    readonly TempFolder _folder = new();
    readonly LlavaInstructionData _data;
    readonly SentencePieceTokenizer _tokenizer;
    static readonly ImagePreprocessing Preprocessing = ImagePreprocessing.Grey(8);

    public InstructionCollatorTests()
    {
        WritePng(_folder.File("a.png"), 60);
        WritePng(_folder.File("b.png"), 200);
        File.WriteAllText(_folder.File("train.json"), HandWritten);
        _data = LlavaInstructionData.Load(_folder.File("train.json"));
        SentencePieceModelFile.WriteBpe(_folder.File("tokenizer.model"), Alphabet.Select((c, i) => (c.ToString(), -(float)i)).ToList());
        _tokenizer = HuggingFaceModels.LoadTokenizer(_folder.Path);
    }

    public void Dispose() => _folder.Dispose();

    static void WritePng(string path, byte grey)
    {
        using var bitmap = new SKBitmap(56, 56, SKColorType.Gray8, SKAlphaType.Opaque);
        bitmap.Erase(new SKColor(grey, grey, grey));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    // The three samples rendered by hand: <s>USER:<image> {q} ASSISTANT: {a}</s>USER: {q2} ASSISTANT: {a2}</s>.
    static readonly long[] MultiIds =
    [
        Bos, .. Chars("▁USER:"), Image, .. Chars("▁How▁many?▁ASSISTANT:"), .. Chars("▁Two."), Eos,
        .. Chars("▁USER:▁And▁bags?▁ASSISTANT:"), .. Chars("▁One."), Eos,
    ];
    static readonly long[] MultiLabels =
        [.. Ignored(1 + 6 + 1 + 21), .. Chars("▁Two."), Eos, .. Ignored(27), .. Chars("▁One."), Eos];
    static readonly long[] TextIds = [Bos, .. Chars("▁USER:"), Image, .. Chars("▁Say▁yes.▁ASSISTANT:"), .. Chars("▁Yes."), Eos];
    static readonly long[] TextLabels = [.. Ignored(1 + 6 + 1 + 20), .. Chars("▁Yes."), Eos];
    static readonly long[] AfterIds = [Bos, .. Chars("▁USER:"), Image, .. Chars("▁Top▁left?▁ASSISTANT:"), .. Chars("▁A▁shirt."), Eos];
    static readonly long[] AfterLabels = [.. Ignored(1 + 6 + 1 + 21), .. Chars("▁A▁shirt."), Eos];

    static long[] Row(Tensor batch, int row) => batch[row].data<long>().ToArray();

    [Fact]
    public void The_character_table_is_the_tokenizers()
    {
        // Anchors Chars: U is the 47th character (3 + 47 = 50), ':' the 63rd.
        Assert.Equal([3, 50, 48, 34, 47, 66], Chars("▁USER:"));
        Assert.Equal([3, 50, 48, 34, 47, 66], _tokenizer.EncodeToIds("USER:", addBeginningOfSentence: false, addEndOfSentence: false));
    }

    [Fact]
    public void A_hand_written_file_collates_to_exactly_the_expected_ids_labels_mask_and_padding()
    {
        using var scope = NewDisposeScope();
        var collator = InstructionCollator.For(_tokenizer, Preprocessing);
        var collated = collator.Collate(_data, _data.Samples);
        var batch = collated.Batch;

        Assert.Equal(0, collated.TruncatedCount);
        Assert.Equal((68, 34, 39), (MultiIds.Length, TextIds.Length, AfterIds.Length));
        Assert.Equal(new long[] { 3, 68 }, batch.InputIds.shape);
        Assert.Equal(MultiIds, Row(batch.InputIds, 0));
        Assert.Equal(MultiLabels, Row(batch.Labels!, 0));
        Assert.Equal([.. TextIds, .. Enumerable.Repeat(Pad, 34)], Row(batch.InputIds, 1));
        Assert.Equal([.. TextLabels, .. Ignored(34)], Row(batch.Labels!, 1));
        Assert.Equal([.. AfterIds, .. Enumerable.Repeat(Pad, 29)], Row(batch.InputIds, 2));
        Assert.Equal([.. AfterLabels, .. Ignored(29)], Row(batch.Labels!, 2));
        Assert.Equal(Enumerable.Repeat(1L, 68), Row(batch.AttentionMask, 0));
        Assert.Equal([.. Enumerable.Repeat(1L, 34), .. Enumerable.Repeat(0L, 34)], Row(batch.AttentionMask, 1));
        Assert.Equal([.. Enumerable.Repeat(1L, 39), .. Enumerable.Repeat(0L, 29)], Row(batch.AttentionMask, 2));

        // Image samples carry their preprocessed image, the text-only one an all-zero image.
        Assert.Equal(new long[] { 3, 1, 8, 8 }, batch.Pixels.shape);
        TensorAssert.BitEqual(_data.Image(_data.Samples[0], Preprocessing), batch.Pixels[0]);
        TensorAssert.BitEqual(zeros(1, 8, 8), batch.Pixels[1]);
        TensorAssert.BitEqual(_data.Image(_data.Samples[2], Preprocessing), batch.Pixels[2]);
    }

    [Fact]
    public void Truncation_cuts_long_samples_and_counts_them()
    {
        using var scope = NewDisposeScope();
        // 34 ids: "text" (exactly 34) is kept whole; "multi" (68) loses its first </s> and all after it,
        // "after" (39) the last four characters of its answer and its </s>.
        var collated = InstructionCollator.For(_tokenizer, Preprocessing, maxLength: 34).Collate(_data, _data.Samples);
        Assert.Equal(["multi", "after"], collated.TruncatedSampleIds);
        Assert.Equal(2, collated.TruncatedCount);
        Assert.Equal(new long[] { 3, 34 }, collated.Batch.InputIds.shape);
        Assert.Equal(MultiIds[..34], Row(collated.Batch.InputIds, 0));
        Assert.Equal([.. Ignored(29), .. Chars("▁Two.")], Row(collated.Batch.Labels!, 0));
        Assert.Equal(TextIds, Row(collated.Batch.InputIds, 1));
        Assert.Equal(TextLabels, Row(collated.Batch.Labels!, 1));
        Assert.Equal(AfterIds[..34], Row(collated.Batch.InputIds, 2));
        Assert.Equal([.. Ignored(29), .. Chars("▁A▁sh")], Row(collated.Batch.Labels!, 2));
        Assert.Equal(Enumerable.Repeat(1L, 3 * 34), collated.Batch.AttentionMask.data<long>().ToArray());

        // 29 ids keep exactly one answer token of "text" (its answer starts at 28).
        var textOnly = InstructionCollator.For(_tokenizer, Preprocessing, maxLength: 29).Collate(_data, [_data.Samples[1]]);
        Assert.Equal(1, textOnly.TruncatedCount);
        Assert.Equal([.. Ignored(28), Chars("▁")[0]], Row(textOnly.Batch.Labels!, 0));
    }

    [Fact]
    public void A_generation_prompt_is_the_conversation_up_to_its_last_answer()
    {
        var collator = InstructionCollator.For(_tokenizer, Preprocessing);
        var multi = _data.Samples.Single(s => s.Id == "multi");
        // Everything before "▁One.</s>": the first exchange, then the second question and "ASSISTANT:".
        Assert.Equal(MultiIds[..^(Chars("▁One.").Length + 1)], collator.PromptIds(multi));
        var text = _data.Samples.Single(s => s.Id == "text");
        Assert.Equal(TextIds[..(1 + 6 + 1 + 20)], collator.PromptIds(text));
    }

    [Fact]
    public void Truncation_that_leaves_no_answer_token_is_an_error_naming_the_sample()
    {
        using var scope = NewDisposeScope();
        // "multi"'s first answer token is at 29: 29 ids keep only its prompt.
        var collator = InstructionCollator.For(_tokenizer, Preprocessing, maxLength: 29);
        var error = Assert.Throws<InstructionSampleException>(() => collator.Collate(_data, _data.Samples));
        Assert.Equal("multi", error.SampleId);
        Assert.Equal(SampleFault.NoAnswerWithinMaxLength, error.Reason);
        Assert.Contains("sample \"multi\"", error.Message);
        Assert.Contains("29", error.Message);
    }

    [Fact]
    public void Images_must_match_the_samples_and_the_preprocessing()
    {
        using var scope = NewDisposeScope();
        var collator = InstructionCollator.For(_tokenizer, Preprocessing);
        var samples = _data.Samples;
        var image = zeros(1, 8, 8);
        Assert.Contains("\"multi\" has an image but none", Assert.Throws<ArgumentException>(() => collator.Collate(samples, [null, null, image])).Message);
        Assert.Contains("\"text\" is text-only but was given an image", Assert.Throws<ArgumentException>(() => collator.Collate(samples, [image, image, image])).Message);
        Assert.Contains("\"after\": image of shape [3, 8, 8]", Assert.Throws<ArgumentException>(() => collator.Collate(samples, [image, null, zeros(3, 8, 8)])).Message);
        Assert.Contains("3 samples but 2 images", Assert.Throws<ArgumentException>(() => collator.Collate(samples, [image, null])).Message);
    }

    [Fact]
    public void The_batch_goes_through_the_model_to_a_finite_loss()
    {
        using var scope = NewDisposeScope();
        var config = new LlavaConfig(
            new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, ImageSize: 8, PatchSize: 4, NumChannels: 1),
            new LlamaConfig(VocabSize: 3 + Alphabet.Length, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1),
            new VceConfig(Heads: 2));
        var model = Weights.Randomize(new LlavaModel(config), 3, 0.2);
        var batch = InstructionCollator.For(_tokenizer, ImagePreprocessing.ForVisionTower(config.Vision)).Collate(_data, _data.Samples).Batch;

        var output = model.call(batch);

        // Each placeholder became the 2 x 2 grid's 4 image tokens.
        Assert.Equal(new long[] { 3, 68 - 1 + 4, 3 + Alphabet.Length }, output.Logits.shape);
        var loss = output.Loss!.item<float>();
        Assert.True(float.IsFinite(loss) && loss > 0, $"loss {loss}");
    }
}
