using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Multimodal;

public class TowerFeatureCacheTests
{
    static LlavaConfig Tiny(VceConfig? vce) => new(
        new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 4, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3, NumChannels: 1),
        new LlamaConfig(VocabSize: 13, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1),
        vce);

    static LlavaModel FrozenTower(VceConfig? vce)
    {
        var model = Weights.Randomize(new LlavaModel(Tiny(vce), ScalarType.Float64), 5, 0.3);
        foreach (var p in model.vision_tower.parameters()) p.requires_grad = false;
        return model;
    }

    /// <summary>Three sequences over images a, b, a: the third shows the first's image again.</summary>
    static MultimodalBatch Batch(Tensor a, Tensor b)
    {
        var ids = tensor(new long[] { 1, LlavaConfig.ImageTokenId, 2, 3, LlavaConfig.ImageTokenId, 4, 5, LlavaConfig.ImageTokenId, 6 }).reshape(3, 3);
        return new MultimodalBatch(ids, ones_like(ids), stack([a, b, a]));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Cached_features_give_the_models_input_without_the_cache_and_a_seen_image_skips_the_tower(bool withVce)
    {
        using var scope = NewDisposeScope();
        var model = FrozenTower(withVce ? new VceConfig(Levels: [-1, -2, -3], AnchorLevel: -2, Heads: 2, Points: 2) : null);
        var generator = new Generator(4);
        var a = randn(1, 6, 6, dtype: ScalarType.Float64, generator: generator);
        var b = randn(1, 6, 6, dtype: ScalarType.Float64, generator: generator);
        var batch = Batch(a, b);
        var expected = model.Prepare(batch).Embeds;

        using var cache = new TowerFeatureCache(maxBytes: 1 << 20);
        model.TowerCache = cache;
        var first = model.Prepare(batch).Embeds;
        // a, b and a again: all three went through the tower (the repeat was not stored yet), two images kept.
        Assert.Equal((0L, 3L, 2), (cache.Hits, cache.Misses, cache.Images));
        var second = model.Prepare(Batch(b, a)).Embeds;
        Assert.Equal((3L, 3L), (cache.Hits, cache.Misses));

        Assert.True(allclose(expected, first, rtol: 1e-12, atol: 1e-12));
        model.TowerCache = null;
        Assert.True(allclose(model.Prepare(Batch(b, a)).Embeds, second, rtol: 1e-12, atol: 1e-12));
        // Only the levels the connector reads are kept: (levels, patches, C) per image.
        long levels = withVce ? 3 : 1;
        Assert.Equal(2 * levels * 4 * 8 * sizeof(double), cache.Bytes);
    }

    [Fact]
    public void Nothing_beyond_the_budget_is_kept_and_every_lookup_then_misses()
    {
        using var scope = NewDisposeScope();
        var model = FrozenTower(null);
        var pixels = randn(1, 6, 6, dtype: ScalarType.Float64);
        using var cache = new TowerFeatureCache(maxBytes: 4 * 8 * sizeof(double) - 1);   // one image's level is 4 patches x 8 channels
        model.TowerCache = cache;
        model.Prepare(Batch(pixels, pixels));
        model.Prepare(Batch(pixels, pixels));
        Assert.Equal((0L, 6L, 0, 0L), (cache.Hits, cache.Misses, cache.Images, cache.Bytes));
    }

    [Fact]
    public void A_tower_that_trains_bypasses_the_cache()
    {
        using var scope = NewDisposeScope();
        var model = FrozenTower(null);
        model.vision_tower.parameters().First().requires_grad = true;
        using var cache = new TowerFeatureCache(maxBytes: 1 << 20);
        model.TowerCache = cache;
        var pixels = randn(1, 6, 6, dtype: ScalarType.Float64);
        model.Prepare(Batch(pixels, pixels));
        Assert.Equal((0L, 0L, 0), (cache.Hits, cache.Misses, cache.Images));
    }

    [Fact]
    public void One_cache_serves_one_connector()
    {
        using var scope = NewDisposeScope();
        var plain = FrozenTower(null);
        var enhanced = FrozenTower(new VceConfig(Levels: [-1, -2], AnchorLevel: -1, Heads: 2, Points: 2));
        using var cache = new TowerFeatureCache(maxBytes: 1 << 20);
        var pixels = randn(1, 6, 6, dtype: ScalarType.Float64);
        plain.TowerCache = cache;
        enhanced.TowerCache = cache;
        plain.Prepare(Batch(pixels, pixels));
        var error = Assert.Throws<InvalidOperationException>(() => enhanced.Prepare(Batch(pixels, pixels)));
        Assert.Contains("[-2]", error.Message);
        Assert.Contains("[-1, -2]", error.Message);
    }

    [Fact]
    public void A_negative_budget_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TowerFeatureCache(-1));
    }
}
