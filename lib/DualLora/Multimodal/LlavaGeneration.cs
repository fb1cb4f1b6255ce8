using DualLora.Language;
using static TorchSharp.torch;

namespace DualLora.Multimodal;

/// <summary>
/// Answers prompts about images with a <see cref="LlavaModel"/>: each prompt's placeholder becomes its image's
/// tokens (<see cref="LlavaModel.Prepare"/>), the prompts are left-padded into one batch, and
/// <see cref="TextGeneration.Generate"/> continues them with the key/value cache, greedily unless a temperature
/// is given. Left padding keeps every prompt's last token in the last column, where generation reads the next
/// token from; the decoder counts positions over real tokens only, so a padded prompt generates what it would alone.
/// </summary>
public static class LlavaGeneration
{
    /// <summary>
    /// Generates an answer for each prompt, in eval mode (dropout off; the model's mode is restored after) and
    /// without gradients.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="promptIds">One prompt per image: token ids with exactly one <see cref="LlavaConfig.ImageTokenId"/>, unpadded.</param>
    /// <param name="pixels">(prompts, channels, height, width): the images, preprocessed; moved to the model's dtype and device.</param>
    /// <param name="maxNewTokens">The most tokens generated per prompt.</param>
    /// <param name="endOfSequence">The token that ends an answer; it and anything after it are not returned.</param>
    /// <param name="padId">The id padding positions carry (never attended to, so any vocabulary id does).</param>
    /// <param name="temperature">0 for greedy decoding.</param>
    /// <param name="topK">Sample only among the k most likely tokens (0: all).</param>
    /// <param name="generator">The random source for sampling.</param>
    /// <returns>Each prompt's generated ids, without the end-of-sequence token.</returns>
    public static IReadOnlyList<long[]> Generate(LlavaModel model, IReadOnlyList<long[]> promptIds, Tensor pixels, int maxNewTokens,
        long endOfSequence, long padId = 0, double temperature = 0, int topK = 0, Generator? generator = null)
    {
        if (promptIds.Count == 0) throw new ArgumentException("no prompts to generate from.", nameof(promptIds));
        if (pixels.shape[0] != promptIds.Count)
            throw new ArgumentException($"{promptIds.Count} prompts but {pixels.shape[0]} images.", nameof(pixels));
        if (maxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(maxNewTokens), maxNewTokens, "generate at least one token.");

        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var (ids, mask) = LeftPad(promptIds, padId);
            var reference = model.parameters().First();
            var batch = new MultimodalBatch(ids.to(reference.device), mask.to(reference.device), pixels.to(reference.dtype, reference.device));
            var (embeds, spliced, _, _) = model.Prepare(batch);
            var generated = TextGeneration.Generate(model.language_model, embeds, spliced, maxNewTokens, temperature, topK, generator, endOfSequence);
            var rows = generated.cpu().data<long>().ToArray();
            int width = (int)generated.shape[1];
            return Enumerable.Range(0, promptIds.Count)
                .Select(row => rows.Skip(row * width).Take(width).TakeWhile(id => id != endOfSequence).ToArray())
                .ToList();
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    /// <summary>The prompts as one (prompts, longest) batch, padded on the left, and its attention mask (0 on padding).</summary>
    public static (Tensor InputIds, Tensor AttentionMask) LeftPad(IReadOnlyList<long[]> promptIds, long padId)
    {
        int length = promptIds.Max(p => p.Length);
        if (length == 0) throw new ArgumentException("every prompt is empty.", nameof(promptIds));
        var ids = new long[promptIds.Count * length];
        var mask = new long[promptIds.Count * length];
        Array.Fill(ids, padId);
        for (int row = 0; row < promptIds.Count; row++)
        {
            int start = row * length + length - promptIds[row].Length;
            promptIds[row].CopyTo(ids, start);
            Array.Fill(mask, 1L, start, promptIds[row].Length);
        }
        return (tensor(ids, [promptIds.Count, length]), tensor(mask, [promptIds.Count, length]));
    }
}
