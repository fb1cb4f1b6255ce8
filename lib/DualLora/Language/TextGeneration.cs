using static TorchSharp.torch;

namespace DualLora.Language;

/// <summary>
/// Autoregressive generation with a key/value cache: the prompt (as embeddings, so image features can be
/// part of it) runs once, then each new token is fed alone. Greedy when the temperature is 0, otherwise
/// sampled from softmax(logits / temperature), optionally from the top k logits only.
/// </summary>
public static class TextGeneration
{
    /// <param name="model">The language model.</param>
    /// <param name="promptEmbeds">(batch, length, hidden): the prompt, left-padded when lengths differ.</param>
    /// <param name="promptMask">(batch, length): 1 for real tokens, 0 for padding; null when nothing is padded.</param>
    /// <param name="maxNewTokens">How many tokens to generate at most.</param>
    /// <param name="temperature">0 for greedy decoding.</param>
    /// <param name="topK">Sample only among the k most likely tokens (0: all).</param>
    /// <param name="generator">The random source for sampling.</param>
    /// <param name="endOfSequence">A token that ends a sequence; after it a sequence only repeats it.</param>
    /// <returns>(batch, generated) token ids.</returns>
    public static Tensor Generate(LlamaForCausalLM model, Tensor promptEmbeds, Tensor? promptMask, int maxNewTokens,
        double temperature = 0, int topK = 0, Generator? generator = null, long? endOfSequence = null)
    {
        long batch = promptEmbeds.shape[0];
        var device = promptEmbeds.device;
        using var cache = new KeyValueCache(model.Config.NumHiddenLayers);
        using var _ = no_grad();
        var mask = (promptMask?.to_type(ScalarType.Int64, copy: true) ?? ones(batch, promptEmbeds.shape[1], dtype: ScalarType.Int64, device: device)).DetachFromDisposeScope();
        var embeds = promptEmbeds;
        var generated = new List<Tensor>();
        var finished = zeros(batch, dtype: ScalarType.Bool, device: device).DetachFromDisposeScope();
        for (int step = 0; step < maxNewTokens; step++)
        {
            using var scope = NewDisposeScope();
            var logits = model.Logits(embeds, mask, cache)[.., -1, ..];
            var next = Choose(logits, temperature, topK, generator);
            if (endOfSequence is long end)
            {
                next = where(finished, full_like(next, end), next);
                finished.logical_or_(next.eq(end));
            }
            generated.Add(next.DetachFromDisposeScope());
            var grownMask = cat([mask, ones(batch, 1, dtype: ScalarType.Int64, device: device)], 1).DetachFromDisposeScope();
            mask.Dispose();
            mask = grownMask;
            var nextEmbeds = model.model.embed_tokens.call(next.unsqueeze(1)).DetachFromDisposeScope();
            if (!ReferenceEquals(embeds, promptEmbeds)) embeds.Dispose();
            embeds = nextEmbeds;
            if (endOfSequence != null && finished.all().item<bool>()) break;
        }
        var result = stack(generated, 1);
        foreach (var tensor in generated.Append(mask).Append(finished)) tensor.Dispose();
        if (!ReferenceEquals(embeds, promptEmbeds)) embeds.Dispose();
        return result;
    }

    static Tensor Choose(Tensor logits, double temperature, int topK, Generator? generator)
    {
        if (temperature <= 0) return logits.argmax(-1);
        var scaled = logits / temperature;
        if (topK > 0 && topK < scaled.shape[^1])
        {
            var threshold = scaled.topk(topK, dim: -1).values[.., -1].unsqueeze(-1);
            scaled = scaled.masked_fill(scaled.lt(threshold), double.NegativeInfinity);
        }
        return multinomial(nn.functional.softmax(scaled, -1), 1, generator: generator).squeeze(-1);
    }
}
