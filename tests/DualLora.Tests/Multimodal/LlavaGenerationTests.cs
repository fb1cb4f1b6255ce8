using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;
using static TorchSharp.torch;

namespace DualLora.Tests.Multimodal;

public class LlavaGenerationTests
{
    const long Image = LlavaConfig.ImageTokenId;
    // An id the test prompts never use, so generation runs its full length unless the model happens to choose it.
    const long EndOfSequence = 12;

    static LlavaModel Model() => Weights.Randomize(new LlavaModel(new LlavaConfig(
        new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 4, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3, NumChannels: 1),
        new LlamaConfig(VocabSize: 13, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1),
        new VceConfig(Heads: 2, Points: 2)), ScalarType.Float64), 5, 0.5);

    // Three lengths, so two of the prompts are left-padded in a batch; the placeholder sits at different offsets.
    static readonly long[][] Prompts = [[1, Image, 2, 3, 4, 5], [6, Image, 7], [Image, 9]];

    static Tensor Pixels() => randn(3, 1, 6, 6, dtype: ScalarType.Float64, generator: new Generator(8));

    [Fact]
    public void Left_padding_puts_each_prompt_at_the_right_end()
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = LlavaGeneration.LeftPad(Prompts, padId: 0);
        Assert.Equal(new long[] { 0, 0, 0, 6, Image, 7 }, ids[1].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 0, 0, 0, 1, 1 }, mask[2].data<long>().ToArray());
        Assert.Equal(new long[] { 1, Image, 2, 3, 4, 5 }, ids[0].data<long>().ToArray());
    }

    [Fact]
    public void A_batch_generates_what_each_prompt_generates_alone()
    {
        using var scope = NewDisposeScope();
        var model = Model();
        var pixels = Pixels();
        var together = LlavaGeneration.Generate(model, Prompts, pixels, maxNewTokens: 6, EndOfSequence);
        for (int i = 0; i < Prompts.Length; i++)
        {
            var alone = LlavaGeneration.Generate(model, [Prompts[i]], pixels[i..(i + 1)], maxNewTokens: 6, EndOfSequence);
            Assert.Equal(alone[0], together[i]);
        }
        Assert.Contains(together, answer => answer.Length == 6);   // the comparison covered several cached steps
    }

    [Fact]
    public void Cached_greedy_generation_equals_the_argmax_of_recomputing_the_whole_sequence()
    {
        using var scope = NewDisposeScope();
        var model = Model();
        var pixels = Pixels();
        var generated = LlavaGeneration.Generate(model, Prompts, pixels, maxNewTokens: 5, EndOfSequence);
        model.eval();
        using var _ = no_grad();
        for (int i = 0; i < Prompts.Length; i++)
        {
            var sequence = Prompts[i].ToList();
            for (int step = 0; step < generated[i].Length; step++)
            {
                var ids = tensor(sequence.ToArray()).unsqueeze(0);
                var logits = model.call(new MultimodalBatch(ids, ones_like(ids), pixels[i..(i + 1)])).Logits;
                long next = logits[0, -1].argmax().item<long>();
                Assert.Equal(next, generated[i][step]);
                sequence.Add(next);
            }
        }
    }

    [Fact]
    public void Generation_stops_at_the_end_of_sequence_and_restores_the_training_mode()
    {
        using var scope = NewDisposeScope();
        var model = Model();
        var pixels = Pixels();
        var free = LlavaGeneration.Generate(model, Prompts, pixels, maxNewTokens: 4, EndOfSequence);
        // Declaring the first generated token of prompt 0 the end of sequence leaves it an empty answer.
        long first = free[0][0];
        model.train();
        var stopped = LlavaGeneration.Generate(model, Prompts, pixels, maxNewTokens: 4, endOfSequence: first);
        Assert.True(model.training);
        Assert.Empty(stopped[0]);
        foreach (var answer in stopped) Assert.DoesNotContain(first, answer);
        for (int i = 1; i < Prompts.Length; i++) Assert.Equal(free[i].TakeWhile(id => id != first), stopped[i]);
    }

    [Fact]
    public void Mismatched_prompts_and_images_are_a_clear_error()
    {
        using var scope = NewDisposeScope();
        var model = Model();
        var error = Assert.Throws<ArgumentException>(() => LlavaGeneration.Generate(model, Prompts, Pixels()[..2], 3, EndOfSequence));
        Assert.Contains("3 prompts but 2 images", error.Message);
    }
}
