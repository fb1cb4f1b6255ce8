using System.Security.Cryptography;
using DualLora.IO;
using DualLora.Vision;
using static TorchSharp.torch;

namespace DualLora.Multimodal;

/// <summary>
/// The frozen vision tower's features of each image, computed once and reused. While the tower does not train (stages 1
/// and 2 of the recipe), the hidden states the connector reads are a fixed function of the pixels, so an image seen
/// again (LLaVA data asks several questions about one image; a run repeats its data) needs no second pass through the
/// tower. Images are recognised by the SHA-256 of their pixels; only the levels the connector reads are kept, on the
/// model's device, up to <see cref="MaxBytes"/> (images beyond it are encoded every time). Each image is encoded on its
/// own, so its features are the same bits in whatever batch it comes. A <see cref="LlavaModel"/>
/// uses it through <see cref="LlavaModel.TowerCache"/>, and only while no tower parameter requires a gradient. The
/// cache trusts that the tower's weights do not change while it is attached: detach it (and dispose it) before
/// loading or training other tower weights.
/// </summary>
public sealed class TowerFeatureCache(long maxBytes) : IDisposable
{
    readonly Dictionary<string, Tensor> features = new(StringComparer.Ordinal);
    IReadOnlyList<int>? levels;

    /// <summary>The most bytes of features kept.</summary>
    public long MaxBytes { get; } = maxBytes >= 0 ? maxBytes : throw new ArgumentOutOfRangeException(nameof(maxBytes), maxBytes, "the cache's size cannot be negative.");
    public long Bytes { get; private set; }
    /// <summary>Images whose features were found.</summary>
    public long Hits { get; private set; }
    /// <summary>Images that went through the tower.</summary>
    public long Misses { get; private set; }
    public int Images => features.Count;

    /// <summary>
    /// The patch features (batch, patches, C) of each hidden state in <paramref name="readLevels"/> for the images in
    /// <paramref name="pixels"/>: the cached ones reused, the others encoded (one by one, without gradients) and kept
    /// while the budget allows.
    /// </summary>
    public IReadOnlyList<Tensor> Features(ClipVisionModel tower, IReadOnlyList<int> readLevels, Tensor pixels)
    {
        levels ??= readLevels.ToList();
        if (!levels.SequenceEqual(readLevels))
            throw new InvalidOperationException($"this cache holds levels [{string.Join(", ", levels)}], not [{string.Join(", ", readLevels)}]: one cache serves one connector.");
        var keys = Keys(pixels);
        var missing = Enumerable.Range(0, keys.Length).Where(i => !features.ContainsKey(keys[i])).ToArray();
        Hits += keys.Length - missing.Length;
        Misses += missing.Length;

        var fresh = new Dictionary<int, Tensor>();
        using (no_grad())
        {
            foreach (int i in missing)
            {
                // One image at a time: its features then never depend on the batch it came in (a product's last bits
                // can), so a resumed run gets the same bits as an unbroken one.
                var encoded = tower.Encode(pixels.narrow(0, i, 1));
                var one = stack(levels.Select(l => encoded.PatchFeatures(l)[0]).ToArray(), 0);              // (levels, patches, C)
                fresh[i] = one;
                long bytes = one.NumberOfElements * one.ElementSize;
                if (Bytes + bytes > MaxBytes || features.ContainsKey(keys[i])) continue;
                features[keys[i]] = one.clone().DetachFromDisposeScope();
                Bytes += bytes;
            }
        }
        var perImage = keys.Select((key, i) => fresh.TryGetValue(i, out var one) ? one : features[key]).ToArray();
        var all = stack(perImage, 0);                                                                    // (batch, levels, patches, C)
        return Enumerable.Range(0, levels.Count).Select(level => all[.., level]).ToList();
    }

    /// <summary>The SHA-256 of each image's pixels (with its shape and type, so equal bytes of another layout differ).</summary>
    static string[] Keys(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var host = pixels.detach().cpu().contiguous();
        long perImage = host.NumberOfElements / host.shape[0] * host.ElementSize;
        var bytes = new byte[host.NumberOfElements * host.ElementSize];
        TensorBytes.ForEachBlock(host, (block, offset) => block.CopyTo(bytes.AsSpan((int)offset)));
        string layout = $"{host.dtype}:{string.Join("x", host.shape.Skip(1))}:";
        return Enumerable.Range(0, (int)host.shape[0])
            .Select(i => layout + Convert.ToHexString(SHA256.HashData(bytes.AsSpan((int)(i * perImage), (int)perImage))))
            .ToArray();
    }

    public void Dispose()
    {
        foreach (var tensor in features.Values) tensor.Dispose();
        features.Clear();
        Bytes = 0;
    }
}
