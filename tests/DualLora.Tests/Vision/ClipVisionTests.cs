using DualLora.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Vision;

public class ClipVisionTests
{
    static readonly ClipVisionConfig Tiny = new(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 3, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3, NumChannels: 2);

    static ClipVisionModel Model(ClipVisionConfig config) => Weights.Randomize(new ClipVisionModel(config, ScalarType.Float64), 11, 0.5);

    [Fact]
    public void Keys_follow_the_Hugging_Face_CLIPVisionModel_layout()
    {
        using var scope = NewDisposeScope();
        var keys = Model(Tiny).state_dict().Keys.ToHashSet();
        foreach (string key in new[]
        {
            "vision_model.embeddings.class_embedding", "vision_model.embeddings.patch_embedding.weight", "vision_model.embeddings.position_embedding.weight",
            "vision_model.pre_layrnorm.weight", "vision_model.pre_layrnorm.bias", "vision_model.post_layernorm.weight",
            "vision_model.encoder.layers.2.self_attn.q_proj.weight", "vision_model.encoder.layers.2.self_attn.out_proj.bias",
            "vision_model.encoder.layers.0.layer_norm1.weight", "vision_model.encoder.layers.0.mlp.fc1.weight", "vision_model.encoder.layers.0.mlp.fc2.bias",
            "vision_model.encoder.layers.0.layer_norm2.bias",
        })
            Assert.Contains(key, keys);
        Assert.DoesNotContain("vision_model.embeddings.patch_embedding.bias", keys);
    }

    [Fact]
    public void Every_hidden_state_is_returned_and_patch_features_drop_the_class_token()
    {
        using var scope = NewDisposeScope();
        var output = Model(Tiny).Encode(randn(5, 2, 6, 6, dtype: ScalarType.Float64));
        Assert.Equal(4, output.HiddenStates.Count);
        Assert.All(output.HiddenStates, h => Assert.Equal(new long[] { 5, 5, 8 }, h.shape));
        var features = output.PatchFeatures(-2);
        Assert.Equal(new long[] { 5, 4, 8 }, features.shape);
        TensorAssert.BitEqual(output.HiddenStates[2][.., 1..], features);
        Assert.Contains("4 hidden states", Assert.Throws<ArgumentOutOfRangeException>(() => output.PatchFeatures(-5)).Message);
    }

    [Fact]
    public void The_embeddings_and_the_first_layer_match_a_step_by_step_reference()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        var p = model.state_dict();
        var pixels = randn(1, 2, 6, 6, dtype: ScalarType.Float64, generator: new Generator(2));
        var output = model.Encode(pixels);

        // Patches row by row: patch (i, j) covers rows 3i..3i+2 and columns 3j..3j+2 of every channel.
        var kernel = p["vision_model.embeddings.patch_embedding.weight"];        // (8, 2, 3, 3)
        var tokens = new List<Tensor> { p["vision_model.embeddings.class_embedding"] };
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
            {
                var patch = pixels[0, .., (3 * i)..(3 * i + 3), (3 * j)..(3 * j + 3)];
                tokens.Add((kernel * patch.unsqueeze(0)).sum([1, 2, 3]));
            }
        var x = stack(tokens) + p["vision_model.embeddings.position_embedding.weight"];
        Tensor Norm(Tensor t, string name) => (t - t.mean([-1], keepdim: true)) / (t.var([-1], unbiased: false, keepdim: true) + 1e-5).sqrt() * p[name + ".weight"] + p[name + ".bias"];
        x = Norm(x, "vision_model.pre_layrnorm");
        Assert.True(output.HiddenStates[0][0].allclose(x, rtol: 1e-10, atol: 1e-10));

        string l = "vision_model.encoder.layers.0.";
        Tensor Linear(Tensor t, string name) => t.matmul(p[name + ".weight"].t()) + p[name + ".bias"];
        var h = Norm(x, l + "layer_norm1");
        var (q, k, v) = (Linear(h, l + "self_attn.q_proj"), Linear(h, l + "self_attn.k_proj"), Linear(h, l + "self_attn.v_proj"));
        var heads = Enumerable.Range(0, 2).Select(head =>
        {
            var columns = TensorIndex.Slice(4 * head, 4 * head + 4);
            var scores = q[.., columns].matmul(k[.., columns].t()) / 2.0;         // sqrt(head size 4)
            return nn.functional.softmax(scores, 1).matmul(v[.., columns]);
        }).ToArray();
        x = x + Linear(cat(heads, 1), l + "self_attn.out_proj");
        var m = Linear(Norm(x, l + "layer_norm2"), l + "mlp.fc1");
        x = x + Linear(m * (1.702 * m).sigmoid(), l + "mlp.fc2");
        Assert.True(output.HiddenStates[1][0].allclose(x, rtol: 1e-10, atol: 1e-10), $"max difference {(output.HiddenStates[1][0] - x).abs().max().item<double>()}");
    }

    [Fact]
    public void Bad_configs_name_the_field()
    {
        Assert.Contains("image_size", Assert.Throws<ArgumentException>(() => new ClipVisionModel(Tiny with { ImageSize = 7 })).Message);
        Assert.Contains("hidden_act", Assert.Throws<ArgumentException>(() => new ClipVisionModel(Tiny with { HiddenAct = "relu" })).Message);
    }
}
