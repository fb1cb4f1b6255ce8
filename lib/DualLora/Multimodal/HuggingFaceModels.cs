using System.Text.Json;
using DualLora.IO;
using DualLora.Language;
using DualLora.Vision;
using Microsoft.ML.Tokenizers;
using static TorchSharp.torch;

namespace DualLora.Multimodal;

/// <summary>
/// Loads the models people already have on disk (model layouts sit here, above Vision and Language; IO stays generic), from a local folder in Hugging Face's layout: a
/// <c>config.json</c> and <c>model.safetensors</c> (or shards named in <c>model.safetensors.index.json</c>),
/// weights in F32, F16 or BF16. Nothing is downloaded. Keys, shapes and the architecture are checked, and
/// every fault is reported with the file it is in.
/// </summary>
public static class HuggingFaceModels
{
    const string ConfigFile = "config.json";

    /// <summary>The decoder config of a <c>LlamaForCausalLM</c> folder (or of a LLaVA folder, whose LLaMA fields sit at the top level).</summary>
    public static LlamaConfig ReadLlamaConfig(string folder)
    {
        var json = ReadConfig(folder);
        var architectures = json.OptionalStringList("architectures") ?? [];
        string? modelType = json.OptionalString("model_type");
        bool llama = architectures.Any(n => n is "LlamaForCausalLM" or "LlavaLlamaForCausalLM") || modelType is "llama" or "llava" or "llava_llama";
        if (!llama)
            throw json.Error($"architecture [{string.Join(", ", architectures)}] (model_type \"{modelType}\") is not supported; expected LlamaForCausalLM.");
        int hidden = json.Int("hidden_size"), heads = json.Int("num_attention_heads");
        var config = new LlamaConfig(
            VocabSize: json.Int("vocab_size"),
            HiddenSize: hidden,
            IntermediateSize: json.Int("intermediate_size"),
            NumHiddenLayers: json.Int("num_hidden_layers"),
            NumAttentionHeads: heads,
            NumKeyValueHeads: json.OptionalInt("num_key_value_heads") ?? heads,
            RmsNormEps: json.OptionalDouble("rms_norm_eps") ?? 1e-6,
            RopeTheta: json.OptionalDouble("rope_theta") ?? 10000,
            MaxPositionEmbeddings: json.OptionalInt("max_position_embeddings") ?? 2048,
            TieWordEmbeddings: json.OptionalBool("tie_word_embeddings") ?? false);
        if (json.Kind("rope_scaling") == JsonValueKind.Object)
            throw json.Error("rope_scaling is not supported by this project's decoder.");
        if (json.OptionalString("hidden_act") is { } act && act != "silu")
            throw json.Error($"hidden_act \"{act}\" is not supported; LLaMA uses \"silu\".");
        Validated(json, config.Validate);
        return config;
    }

    /// <summary>A <c>LlamaForCausalLM</c> from a local folder, weights converted to <paramref name="dtype"/>.</summary>
    public static LlamaForCausalLM LoadLlama(string folder, ScalarType dtype = ScalarType.Float32)
    {
        var config = ReadLlamaConfig(folder);
        var model = new LlamaForCausalLM(config, dtype);
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        StrictWeights.Load(model, checkpoint, key => key,
            ignorable: key => key.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal),
            optional: key => config.TieWordEmbeddings && key == "lm_head.weight");
        if (config.TieWordEmbeddings) model.lm_head.weight = model.model.embed_tokens.weight!;
        return model;
    }

    /// <summary>
    /// The vision config of a <c>CLIPVisionModel</c> folder, or the <c>vision_config</c> of a full <c>CLIPModel</c>.
    /// </summary>
    public static ClipVisionConfig ReadClipVisionConfig(string folder)
    {
        var root = ReadConfig(folder);
        var architectures = root.OptionalStringList("architectures") ?? [];
        var json = root.OptionalObject("vision_config") ?? root;
        string? modelType = json.OptionalString("model_type");
        if (!architectures.Any(n => n is "CLIPVisionModel" or "CLIPModel") && modelType is not ("clip_vision_model" or "clip"))
            throw json.Error($"architecture [{string.Join(", ", architectures)}] (model_type \"{modelType}\") is not supported; expected CLIPVisionModel or CLIPModel.");
        var config = new ClipVisionConfig(
            HiddenSize: json.Int("hidden_size"),
            IntermediateSize: json.Int("intermediate_size"),
            NumHiddenLayers: json.Int("num_hidden_layers"),
            NumAttentionHeads: json.Int("num_attention_heads"),
            ImageSize: json.Int("image_size"),
            PatchSize: json.Int("patch_size"),
            NumChannels: json.OptionalInt("num_channels") ?? 3,
            LayerNormEps: json.OptionalDouble("layer_norm_eps") ?? 1e-5,
            HiddenAct: json.OptionalString("hidden_act") ?? "quick_gelu");
        Validated(json, config.Validate);
        return config;
    }

    /// <summary>A CLIP vision tower from a local folder (the text tower of a full CLIPModel file is ignored).</summary>
    public static ClipVisionModel LoadClipVision(string folder, ScalarType dtype = ScalarType.Float32)
    {
        var model = new ClipVisionModel(ReadClipVisionConfig(folder), dtype);
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        StrictWeights.Load(model, checkpoint, key => key,
            ignorable: key => key == "vision_model.embeddings.position_ids" || key.StartsWith("text_model.", StringComparison.Ordinal)
                || key.StartsWith("visual_projection.", StringComparison.Ordinal) || key.StartsWith("text_projection.", StringComparison.Ordinal)
                || key == "logit_scale");
        return model;
    }

    /// <summary>
    /// LLaVA-1.5's projector weights (<c>model.mm_projector.0/2</c>, as in a LLaVA checkpoint, or
    /// <c>mm_projector.0/2</c>) into a connector's projector; other keys of the file are left alone.
    /// </summary>
    public static void LoadLlavaProjector(VisionConnector connector, string folder)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        string prefix = checkpoint.Contains("model.mm_projector.0.weight") ? "model.mm_projector." : "mm_projector.";
        StrictWeights.Load(connector.mm_projector, checkpoint, key => prefix + key, ignorable: key => !key.StartsWith(prefix, StringComparison.Ordinal));
    }

    /// <summary>
    /// The SentencePiece tokenizer of a LLaMA-family folder (<c>tokenizer.model</c>), through
    /// Microsoft.ML.Tokenizers; it adds the beginning-of-sentence token as LLaMA does.
    /// </summary>
    public static LlamaTokenizer LoadTokenizer(string folder)
    {
        string path = Path.Combine(Path.GetFullPath(folder), "tokenizer.model");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no SentencePiece tokenizer.model in the model folder.");
        using var stream = File.OpenRead(path);
        try
        {
            return LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{path}: not a SentencePiece BPE model this tokenizer can read ({e.Message}).", e);
        }
    }

    static JsonObjectReader ReadConfig(string folder)
    {
        string path = Path.Combine(Path.GetFullPath(folder), ConfigFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no config.json in the model folder.");
        return JsonObjectReader.ReadFile(path);
    }

    static void Validated(JsonObjectReader json, Action validate)
    {
        try
        {
            validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{json.File}: {e.Message}", e);
        }
    }
}
