using DualLora.IO;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Multimodal;

/// <summary>
/// LLaVA-1.5 checkpoints in transformers' <c>LlavaForConditionalGeneration</c> layout (llava-hf), in both key
/// layouts transformers has saved, and in the original LLaVA layout, written here as tiny files and loaded in one call.
/// </summary>
public class LlavaHfLayoutTests
{
    const long Image = LlavaConfig.ImageTokenId;

    // Sizes the configs below spell out; everything else is left to transformers' defaults (rms_norm_eps 1e-6,
    // rope_theta 10000, num_key_value_heads = heads, num_channels 3, layer_norm_eps 1e-5, quick_gelu).
    static readonly ClipVisionConfig Vision = new(HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 3, NumAttentionHeads: 2, ImageSize: 8, PatchSize: 4, NumChannels: 3);
    static readonly LlamaConfig Text = new(VocabSize: 20, HiddenSize: 24, IntermediateSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 2,
        RmsNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 2048);

    /// <summary>A partial llava-hf config.json, as transformers writes one: only what differs from the defaults.</summary>
    static string HfConfig(string strategy = "default") => $$"""
        {
          "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 19, "model_type": "llava",
          "pad_token_id": 0, "projector_hidden_act": "gelu", "torch_dtype": "float32", "transformers_version": "4.44.0",
          "text_config": { "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 24, "intermediate_size": 32,
                           "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 20 },
          "vision_config": { "model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 3,
                             "num_attention_heads": 2, "image_size": 8, "patch_size": 4, "projection_dim": 12 },
          "vision_feature_layer": -2, "vision_feature_select_strategy": "{{strategy}}"
        }
        """;

    /// <summary>A LLaVA model with random weights, put together by hand from its parts.</summary>
    static LlavaModel Source() => Weights.Randomize(
        new LlavaModel(new ClipVisionModel(Vision, ScalarType.Float64), new LlamaForCausalLM(Text, ScalarType.Float64), null, ScalarType.Float64), 21, 0.3);

    /// <summary>Where each of the model's weights sits in a llava-hf file, spelled out key by key (older or newer transformers).</summary>
    static string HfKey(string key, bool nested)
    {
        if (key == "connector.mm_projector.0.weight") return (nested ? "model." : "") + "multi_modal_projector.linear_1.weight";
        if (key == "connector.mm_projector.0.bias") return (nested ? "model." : "") + "multi_modal_projector.linear_1.bias";
        if (key == "connector.mm_projector.2.weight") return (nested ? "model." : "") + "multi_modal_projector.linear_2.weight";
        if (key == "connector.mm_projector.2.bias") return (nested ? "model." : "") + "multi_modal_projector.linear_2.bias";
        if (key == "language_model.lm_head.weight") return nested ? "lm_head.weight" : "language_model.lm_head.weight";
        if (key.StartsWith("language_model.model.")) return nested ? "model.language_model." + key["language_model.model.".Length..] : key;
        Assert.StartsWith("vision_tower.vision_model.", key);
        return nested ? "model." + key : key;
    }

    static List<KeyValuePair<string, Tensor>> HfTensors(LlavaModel source, bool nested) =>
        source.state_dict().Select(kv => new KeyValuePair<string, Tensor>(HfKey(kv.Key, nested), kv.Value)).ToList();

    static void WriteHf(string folder, List<KeyValuePair<string, Tensor>> tensors, bool sharded = false, string? config = null)
    {
        if (sharded) SafetensorsCheckpoint.WriteSharded(folder, tensors, maxShardBytes: 20_000);
        else SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
        File.WriteAllText(Path.Combine(folder, "config.json"), config ?? HfConfig());
    }

    static MultimodalBatch Batch()
    {
        var ids = tensor(new long[] { 1, Image, 2, 3, 4, 5, Image, 7, 8, 0 }).reshape(2, 5);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }).reshape(2, 5);
        return new MultimodalBatch(ids, mask, randn(2, 3, 8, 8, dtype: ScalarType.Float64, generator: new Generator(3)));
    }

    static void AssertSameWeightsAndLogits(LlavaModel source, LlavaModel loaded)
    {
        var loadedState = loaded.state_dict();
        foreach (var (key, value) in source.state_dict())
        {
            Assert.True(loadedState.ContainsKey(key), $"{key} is not in the loaded model");
            TensorAssert.BitEqual(value, loadedState[key], key);
        }
        var batch = Batch();
        TensorAssert.BitEqual(source.call(batch).Logits, loaded.call(batch).Logits, "logits");
    }

    [Theory]
    [InlineData(false, false)]   // older transformers: vision_tower.*, multi_modal_projector.*, language_model.model.*, language_model.lm_head.weight
    [InlineData(true, false)]    // newer transformers: model.vision_tower.*, model.multi_modal_projector.*, model.language_model.*, lm_head.weight
    [InlineData(true, true)]     // the same, in shards with model.safetensors.index.json
    [InlineData(false, true)]
    public void A_llava_hf_checkpoint_loads_in_one_call_with_every_weight_in_its_place(bool nested, bool sharded)
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var source = Source();
        var tensors = HfTensors(source, nested);
        tensors.Add(new((nested ? "model." : "") + "vision_tower.vision_model.embeddings.position_ids", arange(5).unsqueeze(0)));
        WriteHf(temp.Path, tensors, sharded);
        if (sharded) Assert.True(Directory.GetFiles(temp.Path, "model-*.safetensors").Length > 1);

        var loaded = HuggingFaceModels.LoadLlava(temp.Path, dtype: ScalarType.Float64);
        Assert.Null(loaded.connector.vce);
        Assert.Equal(Vision, loaded.Config.Vision);
        Assert.Equal(Text, loaded.Config.Language);
        AssertSameWeightsAndLogits(source, loaded);
    }

    [Fact]
    public void With_a_VceConfig_the_projector_loads_and_VCE_is_new()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var source = Source();
        WriteHf(temp.Path, HfTensors(source, nested: true));

        var loaded = HuggingFaceModels.LoadLlava(temp.Path, new VceConfig(Levels: [-2, -3], Heads: 2, Points: 2), ScalarType.Float64);
        Assert.NotNull(loaded.connector.vce);
        var loadedState = loaded.state_dict();
        foreach (var (key, value) in source.state_dict()) TensorAssert.BitEqual(value, loadedState[key], key);
        Assert.Contains(loadedState.Keys, k => k.StartsWith("connector.vce."));
        Assert.Equal(5 - 1 + 4, loaded.call(Batch()).Logits.shape[1]);   // a 2 x 2 grid: four image tokens in place of the placeholder
    }

    [Fact]
    public void A_tied_decoder_loads_without_lm_head()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var source = Source();
        var tensors = HfTensors(source, nested: true).Where(kv => kv.Key != "lm_head.weight").ToList();
        WriteHf(temp.Path, tensors, config: HfConfig().Replace("\"vocab_size\": 20", "\"vocab_size\": 20, \"tie_word_embeddings\": true"));

        var loaded = HuggingFaceModels.LoadLlava(temp.Path, dtype: ScalarType.Float64);
        Assert.True(loaded.Config.Language.TieWordEmbeddings);
        TensorAssert.BitEqual(source.language_model.model.embed_tokens.weight!, loaded.language_model.lm_head.weight!, "lm_head");
    }

    [Fact]
    public void The_original_LLaVA_layout_still_loads_with_its_vision_tower_folder()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var source = Source();
        string llava = Path.Combine(temp.Path, "llava-v1.5"), clip = Path.Combine(temp.Path, "clip");
        Directory.CreateDirectory(llava);
        Directory.CreateDirectory(clip);
        var state = source.state_dict();
        SafetensorsWriter.Write(Path.Combine(clip, "model.safetensors"), state.Where(kv => kv.Key.StartsWith("vision_tower."))
            .Select(kv => new KeyValuePair<string, Tensor>(kv.Key["vision_tower.".Length..], kv.Value)));
        File.WriteAllText(Path.Combine(clip, "config.json"), """
            { "architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32,
              "num_hidden_layers": 3, "num_attention_heads": 2, "image_size": 8, "patch_size": 4, "num_channels": 3 }
            """);
        SafetensorsWriter.Write(Path.Combine(llava, "model.safetensors"), state
            .Where(kv => !kv.Key.StartsWith("vision_tower."))
            .Select(kv => new KeyValuePair<string, Tensor>(kv.Key.StartsWith("connector.") ? "model." + kv.Key["connector.".Length..] : kv.Key["language_model.".Length..], kv.Value)));
        File.WriteAllText(Path.Combine(llava, "config.json"), """
            { "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava", "hidden_size": 24, "intermediate_size": 32,
              "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 20, "rms_norm_eps": 1e-06,
              "mm_hidden_size": 16, "mm_projector_type": "mlp2x_gelu", "mm_vision_select_feature": "patch", "mm_vision_select_layer": -2,
              "mm_vision_tower": "openai/clip-vit-large-patch14-336" }
            """);

        AssertSameWeightsAndLogits(source, HuggingFaceModels.LoadLlava(llava, dtype: ScalarType.Float64, visionTowerFolder: clip));

        var connector = new VisionConnector(Vision, 24, null, dtype: ScalarType.Float64);
        HuggingFaceModels.LoadLlavaProjector(connector, llava);
        foreach (var (key, value) in source.connector.mm_projector.state_dict()) TensorAssert.BitEqual(value, connector.mm_projector.state_dict()[key], key);

        var noTower = Assert.Throws<ArgumentException>(() => HuggingFaceModels.LoadLlava(llava));
        Assert.Contains("config.json: an original LLaVA checkpoint does not hold its vision tower (openai/clip-vit-large-patch14-336)", noTower.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LoadLlavaProjector_reads_the_llava_hf_projector(bool nested)
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var source = Source();
        WriteHf(temp.Path, HfTensors(source, nested));
        var connector = new VisionConnector(Vision, 24, null, dtype: ScalarType.Float64);
        HuggingFaceModels.LoadLlavaProjector(connector, temp.Path);
        foreach (var (key, value) in source.connector.mm_projector.state_dict()) TensorAssert.BitEqual(value, connector.mm_projector.state_dict()[key], key);
    }

    [Fact]
    public void A_missing_projector_key_is_named_in_the_llava_hf_layout()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        WriteHf(temp.Path, HfTensors(Source(), nested: false).Where(kv => kv.Key != "multi_modal_projector.linear_2.weight").ToList());

        var error = Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlava(temp.Path, dtype: ScalarType.Float64));
        Assert.Contains("model.safetensors: does not fit the model:\n  missing keys: multi_modal_projector.linear_2.weight", error.Message);
        Assert.DoesNotContain("mm_projector", error.Message);

        var projectorOnly = Assert.Throws<InvalidFileException>(() =>
            HuggingFaceModels.LoadLlavaProjector(new VisionConnector(Vision, 24, null, dtype: ScalarType.Float64), temp.Path));
        Assert.Contains("missing keys: multi_modal_projector.linear_2.weight", projectorOnly.Message);
        Assert.DoesNotContain("mm_projector", projectorOnly.Message);
    }

    [Fact]
    public void Wrong_shapes_and_unexpected_keys_are_named_with_both_shapes()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var tensors = HfTensors(Source(), nested: true)
            .Select(kv => kv.Key == "model.multi_modal_projector.linear_1.weight" ? new KeyValuePair<string, Tensor>(kv.Key, zeros(24, 8, dtype: ScalarType.Float64)) : kv).ToList();
        tensors.Add(new("model.image_newline", zeros(24, dtype: ScalarType.Float64)));
        WriteHf(temp.Path, tensors);

        var error = Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlava(temp.Path, dtype: ScalarType.Float64));
        Assert.Contains("model.safetensors: does not fit the model", error.Message);
        Assert.Contains("shape mismatches: model.multi_modal_projector.linear_1.weight is [24, 8] in the file, [24, 16] in the model", error.Message);
        Assert.Contains("unexpected keys: model.image_newline", error.Message);
    }

    [Fact]
    public void Config_fields_this_project_does_not_implement_are_refused_by_name()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        WriteHf(temp.Path, HfTensors(Source(), nested: true), config: HfConfig(strategy: "full"));
        var full = Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlava(temp.Path));
        Assert.Contains("config.json: field 'vision_feature_select_strategy' is \"full\"; only \"default\"", full.Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), HfConfig().Replace("\"vision_feature_layer\": -2", "\"vision_feature_layer\": -1"));
        Assert.Contains("field 'vision_feature_layer' is -1; only -2", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlava(temp.Path)).Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), HfConfig().Replace("\"projector_hidden_act\": \"gelu\"", "\"projector_hidden_act\": \"relu\""));
        Assert.Contains("field 'projector_hidden_act' is \"relu\"", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlava(temp.Path)).Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), HfConfig().Replace("\"model_type\": \"llama\"", "\"model_type\": \"mistral\""));
        Assert.Contains("field 'text_config.model_type' is \"mistral\"", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlava(temp.Path)).Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), HfConfig().Replace("\"hidden_size\": 24", "\"hidden_size\": \"wide\""));
        Assert.Contains("field 'text_config.hidden_size' is \"wide\"", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlava(temp.Path)).Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), """{ "architectures": ["LlamaForCausalLM"], "model_type": "llama" }""");
        Assert.Contains("is not a LLaVA model", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlava(temp.Path)).Message);
    }
}
