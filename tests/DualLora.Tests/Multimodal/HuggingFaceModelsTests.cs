using DualLora.IO;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Tests.Language;
using DualLora.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Multimodal;

public class HuggingFaceModelsTests
{
    const string LlamaConfigJson = """
        {
          "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
          "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 8, "initializer_range": 0.02,
          "intermediate_size": 12, "max_position_embeddings": 64, "model_type": "llama", "num_attention_heads": 2,
          "num_hidden_layers": 2, "num_key_value_heads": 1, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
          "rope_scaling": null, "rope_theta": 100.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
          "transformers_version": "4.44.0", "use_cache": true, "vocab_size": 11
        }
        """;

    /// <summary>A LLaMA checkpoint in HF's layout: BF16 weights in two shards with an index, plus an old-style inv_freq buffer.</summary>
    static LlamaForCausalLM WriteLlama(string folder, string config = LlamaConfigJson)
    {
        var source = LlamaTests.Model(new LlamaConfig(VocabSize: 11, HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1, RopeTheta: 100));
        using (no_grad()) foreach (var p in source.parameters()) p.copy_(p.to(ScalarType.BFloat16).to(ScalarType.Float64));
        var tensors = source.state_dict().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.to(ScalarType.BFloat16))).ToList();
        tensors.Add(new("model.layers.0.self_attn.rotary_emb.inv_freq", ones(2)));
        SafetensorsCheckpoint.WriteSharded(folder, tensors, maxShardBytes: 600);
        File.WriteAllText(Path.Combine(folder, "config.json"), config);
        return source;
    }

    [Fact]
    public void A_sharded_BF16_LLaMA_checkpoint_loads_and_matches_the_step_by_step_reference()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var source = WriteLlama(temp.Path);
        Assert.True(Directory.GetFiles(temp.Path, "model-*.safetensors").Length > 1);

        var loaded = HuggingFaceModels.LoadLlama(temp.Path, ScalarType.Float64);
        Assert.Equal(1e-5, loaded.Config.RmsNormEps);
        Assert.Equal(1, loaded.Config.NumKeyValueHeads);
        long[] ids = [4, 1, 9, 3];
        var logits = loaded.call(tensor(ids).unsqueeze(0))[0];
        var reference = LlamaTests.ReferenceLogits(source, ids);
        Assert.True(logits.allclose(reference, rtol: 1e-10, atol: 1e-10), $"max difference {(logits - reference).abs().max().item<double>()}");
    }

    [Fact]
    public void The_configs_count_the_parameters_their_models_build()
    {
        using var scope = NewDisposeScope();
        foreach (var text in new[] { new LlamaConfig(), new LlamaConfig(VocabSize: 30, HiddenSize: 24, IntermediateSize: 36, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2) })
            Assert.Equal(new LlamaForCausalLM(text).parameters().Sum(p => p.numel()), text.ParameterCount());
        foreach (var vision in new[] { new ClipVisionConfig(), new ClipVisionConfig(HiddenSize: 16, IntermediateSize: 40, NumHiddenLayers: 3, NumAttentionHeads: 2, ImageSize: 8, PatchSize: 4, NumChannels: 3) })
            Assert.Equal(new ClipVisionModel(vision).parameters().Sum(p => p.numel()), vision.ParameterCount());
    }

    [Fact]
    public void A_config_that_asks_for_far_more_than_the_weights_hold_is_refused_before_anything_is_allocated()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        WriteLlama(temp.Path, LlamaConfigJson.Replace("\"vocab_size\": 11", "\"vocab_size\": 1000000"));
        var error = Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlama(temp.Path));
        Assert.Equal(Path.Combine(temp.Path, "config.json"), error.File);
        Assert.StartsWith("its sizes make a model of 16,001,000 parameters, more than twice the 1,176 that ", error.Fault);
        Assert.Contains("the config and the weights do not belong together (nothing was allocated)", error.Fault);
    }

    [Fact]
    public void Keys_shapes_and_architectures_that_do_not_fit_are_reported()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        WriteLlama(temp.Path, LlamaConfigJson.Replace("\"intermediate_size\": 12", "\"intermediate_size\": 10"));
        var error = Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlama(temp.Path));
        Assert.Contains("model.safetensors.index.json: does not fit the model", error.Message);
        Assert.Contains("shape mismatches: model.layers.0.mlp.gate_proj.weight is [12, 8] in the file, [10, 8] in the model", error.Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), LlamaConfigJson.Replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"));
        var missing = Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlama(temp.Path));
        Assert.Contains("missing keys: model.layers.2.", missing.Message);
        Assert.Contains("model.layers.2.self_attn.q_proj.weight", missing.Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), LlamaConfigJson.Replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1"));
        Assert.Contains("unexpected keys: model.layers.1.", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlama(temp.Path)).Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), LlamaConfigJson.Replace("LlamaForCausalLM", "GPT2LMHeadModel").Replace("\"llama\"", "\"gpt2\""));
        Assert.Contains("architecture [GPT2LMHeadModel] (model_type \"gpt2\") is not supported", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlama(temp.Path)).Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), LlamaConfigJson.Replace("\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}"));
        Assert.Contains("rope_scaling is not supported", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlama(temp.Path)).Message);

        File.WriteAllText(Path.Combine(temp.Path, "config.json"), LlamaConfigJson.Replace("\"hidden_size\": 8", "\"hidden_size\": \"eight\""));
        Assert.Contains("field 'hidden_size' is \"eight\"", Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadLlama(temp.Path)).Message);
    }

    [Fact]
    public void A_CLIP_vision_tower_in_F16_loads_and_computes_what_the_source_computes()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var config = new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3, NumChannels: 3);
        var source = new ClipVisionModel(config, ScalarType.Float64);
        using (no_grad()) foreach (var p in source.parameters()) p.copy_(p.to(ScalarType.Float16).to(ScalarType.Float64));
        var tensors = source.state_dict().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.to(ScalarType.Float16))).ToList();
        tensors.Add(new("vision_model.embeddings.position_ids", arange(5).unsqueeze(0)));
        SafetensorsWriter.Write(Path.Combine(temp.Path, "model.safetensors"), tensors);
        File.WriteAllText(Path.Combine(temp.Path, "config.json"), """
            {
              "architectures": ["CLIPVisionModel"], "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "quick_gelu",
              "hidden_size": 8, "image_size": 6, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 16,
              "layer_norm_eps": 1e-05, "model_type": "clip_vision_model", "num_attention_heads": 2, "num_channels": 3,
              "num_hidden_layers": 2, "patch_size": 3, "projection_dim": 512, "torch_dtype": "float16", "transformers_version": "4.44.0"
            }
            """);
        var loaded = HuggingFaceModels.LoadClipVision(temp.Path, ScalarType.Float64);
        var pixels = randn(2, 3, 6, 6, dtype: ScalarType.Float64);
        var expected = source.Encode(pixels).PatchFeatures();
        Assert.True(loaded.Encode(pixels).PatchFeatures().allclose(expected, rtol: 1e-12, atol: 1e-12));
    }

    [Fact]
    public void LLaVAs_projector_weights_load_from_a_LLaVA_checkpoint()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var vision = new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3);
        var source = new VisionConnector(vision, 12, null);
        var tensors = source.mm_projector.state_dict().Select(kv => new KeyValuePair<string, Tensor>("model.mm_projector." + kv.Key, kv.Value)).ToList();
        tensors.Add(new("model.embed_tokens.weight", ones(3, 12)));
        SafetensorsWriter.Write(Path.Combine(temp.Path, "model.safetensors"), tensors);
        var target = new VisionConnector(vision, 12, null);
        HuggingFaceModels.LoadLlavaProjector(target, temp.Path);
        foreach (var (key, value) in source.mm_projector.state_dict()) TensorAssert.BitEqual(value, target.mm_projector.state_dict()[key], key);
    }
}
