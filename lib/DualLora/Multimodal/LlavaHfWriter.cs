using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.IO;
using DualLora.Language;
using DualLora.Vision;
using static TorchSharp.torch;

namespace DualLora.Multimodal;

/// <summary>
/// Writes a <see cref="LlavaModel"/> in transformers' llava-hf layout (<c>LlavaForConditionalGeneration</c>), the one
/// <see cref="HuggingFaceModels.LoadLlava"/> reads: <c>config.json</c> with <c>vision_config</c> and <c>text_config</c>
/// spelled out in full, and <c>model.safetensors</c> with the keys newer transformers save (<c>model.vision_tower.*</c>,
/// <c>model.multi_modal_projector.linear_1/2.*</c>, <c>model.language_model.*</c>, <c>lm_head.weight</c>). Each file
/// is written atomically (the weights before the config that describes them).
/// </summary>
public static class LlavaHfWriter
{
    public const string ConfigFile = "config.json", WeightsFile = "model.safetensors";

    /// <summary>
    /// Saves <paramref name="model"/> into <paramref name="folder"/>, weights as <paramref name="dtype"/> (default: as they
    /// are). The layout has no place for VCE and reads hidden state −2 only, so a model with VCE or another
    /// select layer is refused.
    /// </summary>
    public static void Save(LlavaModel model, string folder, ScalarType? dtype = null)
    {
        if (model.connector.vce is not null)
            throw new ArgumentException("the llava-hf layout has no place for VCE; save a model without it (VCE is added new when the model is loaded).", nameof(model));
        if (model.Config.SelectLayer != -2)
            throw new ArgumentException($"the model projects hidden state {model.Config.SelectLayer}; the llava-hf layout as this project reads it holds −2 only.", nameof(model));
        folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(folder);
        var type = dtype ?? model.language_model.lm_head.weight!.dtype;
        bool tied = model.Config.Language.TieWordEmbeddings;
        using (var scope = NewDisposeScope())
        {
            var tensors = model.state_dict()
                .Where(kv => !(tied && kv.Key == "language_model.lm_head.weight"))
                .Select(kv => KeyValuePair.Create(FileKey(kv.Key), kv.Value.detach().to(type)))
                .ToList();
            SafetensorsWriter.Write(Path.Combine(folder, WeightsFile), tensors);
        }
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), Config(model.Config, type).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>A weight's key in the file, from its name in the model.</summary>
    public static string FileKey(string key)
    {
        const string projector = "connector.mm_projector.", decoder = "language_model.model.";
        if (key.StartsWith(projector, StringComparison.Ordinal))
        {
            string rest = key[projector.Length..];
            string layer = rest.StartsWith("0.", StringComparison.Ordinal) ? "linear_1" : rest.StartsWith("2.", StringComparison.Ordinal) ? "linear_2"
                : throw new ArgumentException($"'{key}' is not a weight of LLaVA's two-layer projector.");
            return $"model.multi_modal_projector.{layer}.{rest[2..]}";
        }
        if (key.StartsWith(decoder, StringComparison.Ordinal)) return "model.language_model." + key[decoder.Length..];
        if (key == "language_model.lm_head.weight") return "lm_head.weight";
        if (key.StartsWith("vision_tower.", StringComparison.Ordinal)) return "model." + key;
        throw new ArgumentException($"'{key}' has no place in the llava-hf layout.");
    }

    /// <summary>
    /// The config: every size explicit (transformers' defaults are LLaMA-7B's and ViT-B/32's, not this model's). The image
    /// token index is the project's placeholder id (<see cref="LlavaConfig.ImageTokenId"/>, LLaVA's IMAGE_TOKEN_INDEX): the
    /// small tokenizer has no <c>&lt;image&gt;</c> piece.
    /// </summary>
    static JsonObject Config(LlavaConfig config, ScalarType dtype)
    {
        ClipVisionConfig vision = config.Vision;
        LlamaConfig text = config.Language;
        string torchDtype = dtype switch
        {
            ScalarType.Float32 => "float32",
            ScalarType.Float16 => "float16",
            ScalarType.BFloat16 => "bfloat16",
            ScalarType.Float64 => "float64",
            _ => throw new ArgumentException($"weights as {dtype}: use a floating-point type."),
        };
        return new JsonObject
        {
            ["architectures"] = new JsonArray("LlavaForConditionalGeneration"),
            ["model_type"] = "llava",
            ["ignore_index"] = LlavaConfig.IgnoreIndex,
            ["image_token_index"] = LlavaConfig.ImageTokenId,
            ["projector_hidden_act"] = "gelu",
            ["multimodal_projector_bias"] = true,
            ["vision_feature_layer"] = config.SelectLayer,
            ["vision_feature_select_strategy"] = "default",
            ["tie_word_embeddings"] = text.TieWordEmbeddings,
            ["torch_dtype"] = torchDtype,
            ["vision_config"] = new JsonObject
            {
                ["model_type"] = "clip_vision_model",
                ["hidden_size"] = vision.HiddenSize,
                ["intermediate_size"] = vision.IntermediateSize,
                ["num_hidden_layers"] = vision.NumHiddenLayers,
                ["num_attention_heads"] = vision.NumAttentionHeads,
                ["image_size"] = vision.ImageSize,
                ["patch_size"] = vision.PatchSize,
                ["num_channels"] = vision.NumChannels,
                ["layer_norm_eps"] = vision.LayerNormEps,
                ["hidden_act"] = vision.HiddenAct,
            },
            ["text_config"] = new JsonObject
            {
                ["architectures"] = new JsonArray("LlamaForCausalLM"),
                ["model_type"] = "llama",
                ["vocab_size"] = text.VocabSize,
                ["hidden_size"] = text.HiddenSize,
                ["intermediate_size"] = text.IntermediateSize,
                ["num_hidden_layers"] = text.NumHiddenLayers,
                ["num_attention_heads"] = text.NumAttentionHeads,
                ["num_key_value_heads"] = text.NumKeyValueHeads,
                ["rms_norm_eps"] = text.RmsNormEps,
                ["rope_theta"] = text.RopeTheta,
                ["max_position_embeddings"] = text.MaxPositionEmbeddings,
                ["hidden_act"] = "silu",
                ["tie_word_embeddings"] = text.TieWordEmbeddings,
            },
        };
    }
}
