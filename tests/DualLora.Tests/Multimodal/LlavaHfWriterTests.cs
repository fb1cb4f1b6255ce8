using System.Text.Json;
using DualLora.IO;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;
using static TorchSharp.torch;

namespace DualLora.Tests.Multimodal;

public class LlavaHfWriterTests
{
    const long Image = LlavaConfig.ImageTokenId;

    // Sizes unlike transformers' defaults everywhere, one grey channel, grouped-query attention and gelu, so a field the config leaves out would show.
    static readonly ClipVisionConfig Vision = new(HiddenSize: 16, IntermediateSize: 40, NumHiddenLayers: 3, NumAttentionHeads: 2, ImageSize: 8, PatchSize: 4,
        NumChannels: 1, LayerNormEps: 1e-6, HiddenAct: "gelu");
    static readonly LlamaConfig Text = new(VocabSize: 30, HiddenSize: 24, IntermediateSize: 36, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
        RmsNormEps: 1e-5, RopeTheta: 5000, MaxPositionEmbeddings: 256);

    static LlavaModel Model(LlamaConfig text, VceConfig? vce = null) =>
        Weights.Randomize(new LlavaModel(new ClipVisionModel(Vision, ScalarType.Float64), new LlamaForCausalLM(text, ScalarType.Float64), vce, ScalarType.Float64), 5, 0.3);

    static MultimodalBatch Batch() => new(
        tensor(new long[] { 1, Image, 2, 3, 4, 5, Image, 7, 8, 0 }).reshape(2, 5),
        tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }).reshape(2, 5),
        randn(2, 1, 8, 8, dtype: ScalarType.Float64, generator: new Generator(3)));

    [Fact]
    public void A_saved_model_loads_back_with_every_weight_and_the_same_logits()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var source = Model(Text);
        LlavaHfWriter.Save(source, temp.Path);

        var loaded = HuggingFaceModels.LoadLlava(temp.Path, dtype: ScalarType.Float64);
        Assert.Equal(source.Config, loaded.Config);
        var loadedState = loaded.state_dict();
        Assert.Equal(source.state_dict().Keys.Order(), loadedState.Keys.Order());
        foreach (var (key, value) in source.state_dict()) TensorAssert.BitEqual(value, loadedState[key], key);
        var batch = Batch();
        TensorAssert.BitEqual(source.call(batch).Logits, loaded.call(batch).Logits, "logits");
    }

    [Fact]
    public void The_files_are_in_the_newer_transformers_layout_with_a_full_config()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        LlavaHfWriter.Save(Model(Text), temp.Path, ScalarType.Float32);

        using (var weights = SafetensorsFile.Open(temp.File("model.safetensors")))
        {
            Assert.Contains("model.vision_tower.vision_model.embeddings.patch_embedding.weight", weights.Names);
            Assert.Contains("model.multi_modal_projector.linear_1.weight", weights.Names);
            Assert.Contains("model.multi_modal_projector.linear_2.bias", weights.Names);
            Assert.Contains("model.language_model.layers.1.self_attn.q_proj.weight", weights.Names);
            Assert.Contains("lm_head.weight", weights.Names);
            Assert.All(weights.Names, name => Assert.True(name == "lm_head.weight" || name.StartsWith("model."), name));
            Assert.Equal(SafetensorsDType.F32, weights["lm_head.weight"].DType);
        }
        using var config = JsonDocument.Parse(File.ReadAllText(temp.File("config.json")));
        var root = config.RootElement;
        Assert.Equal("LlavaForConditionalGeneration", root.GetProperty("architectures")[0].GetString());
        Assert.Equal("llava", root.GetProperty("model_type").GetString());
        Assert.Equal(-2, root.GetProperty("vision_feature_layer").GetInt32());
        Assert.Equal("default", root.GetProperty("vision_feature_select_strategy").GetString());
        Assert.Equal("gelu", root.GetProperty("projector_hidden_act").GetString());
        Assert.Equal(Image, root.GetProperty("image_token_index").GetInt64());
        Assert.Equal("float32", root.GetProperty("torch_dtype").GetString());
        Assert.Equal(1, root.GetProperty("vision_config").GetProperty("num_channels").GetInt32());
        Assert.Equal(2, root.GetProperty("text_config").GetProperty("num_key_value_heads").GetInt32());

        var loaded = HuggingFaceModels.LoadLlava(temp.Path);
        Assert.Equal(Vision, loaded.Config.Vision);
        Assert.Equal(Text, loaded.Config.Language);
    }

    [Fact]
    public void A_tied_decoder_is_saved_without_lm_head_and_loads_tied()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var source = Model(Text with { TieWordEmbeddings = true });
        source.language_model.lm_head.weight = source.language_model.model.embed_tokens.weight!;
        LlavaHfWriter.Save(source, temp.Path);

        using (var weights = SafetensorsFile.Open(temp.File("model.safetensors")))
            Assert.DoesNotContain("lm_head.weight", weights.Names);
        var loaded = HuggingFaceModels.LoadLlava(temp.Path, dtype: ScalarType.Float64);
        Assert.True(loaded.Config.Language.TieWordEmbeddings);
        TensorAssert.BitEqual(source.call(Batch()).Logits, loaded.call(Batch()).Logits, "logits");
    }

    [Fact]
    public void A_model_with_VCE_is_refused_because_the_layout_has_no_place_for_it()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var error = Assert.Throws<ArgumentException>(() => LlavaHfWriter.Save(Model(Text, new VceConfig(Levels: [-2, -3], Heads: 2, Points: 2)), temp.Path));
        Assert.Contains("no place for VCE", error.Message);
        Assert.Empty(Directory.GetFiles(temp.Path));
    }
}
