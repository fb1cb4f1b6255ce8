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
        return LlamaFields(json, transformersDefaults: false);
    }

    /// <summary>
    /// LLaMA's fields of a config object. With <paramref name="transformersDefaults"/> (a llava-hf <c>text_config</c>,
    /// which lists only what differs from transformers' <c>LlamaConfig</c>), absent sizes take that class's
    /// defaults (LLaMA-7B's); otherwise the sizes are required.
    /// </summary>
    static LlamaConfig LlamaFields(JsonObjectReader json, bool transformersDefaults)
    {
        int Size(string name, int fallback) => transformersDefaults ? json.OptionalInt(name, 1, MaxSize) ?? fallback : json.Int(name, 1, MaxSize);
        int hidden = Size("hidden_size", 4096), heads = Size("num_attention_heads", 32);
        var config = new LlamaConfig(
            VocabSize: Size("vocab_size", 32000),
            HiddenSize: hidden,
            IntermediateSize: Size("intermediate_size", 11008),
            NumHiddenLayers: Size("num_hidden_layers", 32),
            NumAttentionHeads: heads,
            NumKeyValueHeads: json.OptionalInt("num_key_value_heads", 1, MaxSize) ?? heads,
            RmsNormEps: json.OptionalDouble("rms_norm_eps") ?? 1e-6,
            RopeTheta: json.OptionalDouble("rope_theta") ?? 10000,
            MaxPositionEmbeddings: json.OptionalInt("max_position_embeddings", 1, MaxSize) ?? 2048,
            TieWordEmbeddings: json.OptionalBool("tie_word_embeddings") ?? false);
        if (json.Kind("rope_scaling") == JsonValueKind.Object)
            throw json.Error($"{json.FieldPath("rope_scaling")} is not supported by this project's decoder.");
        if (json.OptionalString("hidden_act") is { } act && act != "silu")
            throw json.Error($"{json.FieldPath("hidden_act")} \"{act}\" is not supported; LLaMA uses \"silu\".");
        Validated(json, config.Validate);
        return config;
    }

    /// <summary>A <c>LlamaForCausalLM</c> from a local folder, weights converted to <paramref name="dtype"/>.</summary>
    public static LlamaForCausalLM LoadLlama(string folder, ScalarType dtype = ScalarType.Float32)
    {
        var config = ReadLlamaConfig(folder);
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        CheckSize(Path.Combine(Path.GetFullPath(folder), ConfigFile), checkpoint, config.ParameterCount(), config);
        var model = new LlamaForCausalLM(config, dtype);
        StrictWeights.Load(model, checkpoint, key => key,
            ignorable: IsSavedBuffer,
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
        return ClipFields(json, transformersDefaults: false);
    }

    /// <summary>
    /// CLIP's vision fields of a config object. With <paramref name="transformersDefaults"/> (a llava-hf
    /// <c>vision_config</c>, which lists only what differs from transformers' <c>CLIPVisionConfig</c>), absent
    /// sizes take that class's defaults (ViT-B/32's: width 768, 12 layers, 224 px in 32 px patches); otherwise
    /// the sizes are required.
    /// </summary>
    static ClipVisionConfig ClipFields(JsonObjectReader json, bool transformersDefaults)
    {
        int Size(string name, int fallback) => transformersDefaults ? json.OptionalInt(name, 1, MaxSize) ?? fallback : json.Int(name, 1, MaxSize);
        var config = new ClipVisionConfig(
            HiddenSize: Size("hidden_size", 768),
            IntermediateSize: Size("intermediate_size", 3072),
            NumHiddenLayers: Size("num_hidden_layers", 12),
            NumAttentionHeads: Size("num_attention_heads", 12),
            ImageSize: Size("image_size", 224),
            PatchSize: Size("patch_size", 32),
            NumChannels: json.OptionalInt("num_channels", 1, MaxSize) ?? 3,
            LayerNormEps: json.OptionalDouble("layer_norm_eps") ?? 1e-5,
            HiddenAct: json.OptionalString("hidden_act") ?? "quick_gelu");
        Validated(json, config.Validate);
        return config;
    }

    /// <summary>The vision tower of LLaVA-1.5, CLIP ViT-L/14 at 336 px: what a llava-hf config without <c>vision_config</c> means.</summary>
    static readonly ClipVisionConfig ClipVitLarge336 = new(HiddenSize: 1024, IntermediateSize: 4096, NumHiddenLayers: 24, NumAttentionHeads: 16,
        ImageSize: 336, PatchSize: 14, NumChannels: 3);

    /// <summary>A CLIP vision tower from a local folder (the text tower of a full CLIPModel file is ignored).</summary>
    public static ClipVisionModel LoadClipVision(string folder, ScalarType dtype = ScalarType.Float32)
    {
        var model = new ClipVisionModel(ReadClipVisionConfig(folder), dtype);
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        StrictWeights.Load(model, checkpoint, key => key,
            ignorable: key => IsSavedBuffer(key) || key.StartsWith("text_model.", StringComparison.Ordinal)
                || key.StartsWith("visual_projection.", StringComparison.Ordinal) || key.StartsWith("text_projection.", StringComparison.Ordinal)
                || key == "logit_scale");
        return model;
    }

    /// <summary>
    /// LLaVA-1.5's projector weights into a connector's projector; other keys of the file are left alone. The
    /// keys may be the original LLaVA's (<c>model.mm_projector.0/2</c>, or <c>mm_projector.0/2</c>) or llava-hf's
    /// (<c>multi_modal_projector.linear_1/2</c>, or <c>model.multi_modal_projector.linear_1/2</c> as newer
    /// transformers save them); the layout is told by which of these prefixes the file's keys carry.
    /// </summary>
    public static void LoadLlavaProjector(VisionConnector connector, string folder)
    {
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        var projector = ProjectorLayout(checkpoint);
        StrictWeights.Load(connector.mm_projector, checkpoint, projector.FileKey, ignorable: key => !key.StartsWith(projector.Prefix, StringComparison.Ordinal));
    }

    /// <summary>Where a checkpoint keeps the projector: its key prefix and the file key of each of <c>mm_projector</c>'s keys.</summary>
    sealed record ProjectorKeys(string Prefix, bool HfNames)
    {
        /// <summary><c>0.weight</c> → <c>{prefix}0.weight</c>, or <c>{prefix}linear_1.weight</c> in llava-hf's names.</summary>
        public string FileKey(string key) => Prefix + (!HfNames ? key
            : key.StartsWith("0.", StringComparison.Ordinal) ? "linear_1." + key[2..]
            : key.StartsWith("2.", StringComparison.Ordinal) ? "linear_2." + key[2..] : key);
    }

    static readonly ProjectorKeys[] ProjectorLayouts =
    [
        new("model.multi_modal_projector.", HfNames: true), new("multi_modal_projector.", HfNames: true),
        new("model.mm_projector.", HfNames: false), new("mm_projector.", HfNames: false),
    ];

    /// <summary>The first layout whose prefix some key carries; the original LLaVA's when none does (so a missing key names that layout).</summary>
    static ProjectorKeys ProjectorLayout(SafetensorsCheckpoint checkpoint)
    {
        var names = checkpoint.Names.ToList();
        return ProjectorLayouts.FirstOrDefault(l => names.Any(n => n.StartsWith(l.Prefix, StringComparison.Ordinal)))
            ?? (names.Any(n => n.StartsWith("model.", StringComparison.Ordinal)) ? ProjectorLayouts[2] : ProjectorLayouts[3]);
    }

    /// <summary>
    /// A whole LLaVA-1.5 model from one local folder, in either layout, told by <c>config.json</c>:
    /// <list type="bullet">
    /// <item>llava-hf's <c>LlavaForConditionalGeneration</c> (<c>vision_config</c>, <c>text_config</c>): the vision tower,
    /// the projector and the decoder all come from the folder. Keys as older transformers save them
    /// (<c>vision_tower.vision_model.*</c>, <c>multi_modal_projector.linear_1/2.*</c>, <c>language_model.model.*</c>,
    /// <c>language_model.lm_head.weight</c>) or as newer ones do (<c>model.vision_tower.*</c>,
    /// <c>model.multi_modal_projector.*</c>, <c>model.language_model.*</c>, <c>lm_head.weight</c>).</item>
    /// <item>the original LLaVA's <c>LlavaLlamaForCausalLM</c> (LLaMA fields at the top, <c>mm_vision_tower</c>): the decoder
    /// (<c>model.*</c>, <c>lm_head.weight</c>) and the projector (<c>model.mm_projector.0/2</c>) come from the folder,
    /// which does not hold the vision tower; that comes from <paramref name="visionTowerFolder"/>, a CLIP folder
    /// (the model <c>mm_vision_tower</c> names).</item>
    /// </list>
    /// Neither layout has VCE: with <paramref name="vce"/> null the connector is LLaVA's projector alone; with a
    /// <see cref="VceConfig"/>, VCE is new (randomly initialised) and only the projector loads. Every key of the model
    /// must be in the files with its shape and every key of the files must be used, or the load stops and lists
    /// what does not fit. Text keeps the project's image placeholder <see cref="LlavaConfig.ImageTokenId"/>; a llava-hf
    /// tokenizer's <c>&lt;image&gt;</c> id (<c>image_token_index</c>) must be replaced by it.
    /// </summary>
    public static LlavaModel LoadLlava(string folder, VceConfig? vce = null, ScalarType dtype = ScalarType.Float32, string? visionTowerFolder = null)
    {
        var json = ReadConfig(folder);
        var architectures = json.OptionalStringList("architectures") ?? [];
        string? modelType = json.OptionalString("model_type");
        bool hf = architectures.Contains("LlavaForConditionalGeneration")
            || (modelType == "llava" && (json.Kind("vision_config") != JsonValueKind.Undefined || json.Kind("text_config") != JsonValueKind.Undefined));
        bool original = !hf && (architectures.Contains("LlavaLlamaForCausalLM") || modelType is "llava" or "llava_llama");
        if (!hf && !original)
            throw json.Error($"architecture [{string.Join(", ", architectures)}] (model_type \"{modelType}\") is not a LLaVA model; expected LlavaForConditionalGeneration (llava-hf) or LlavaLlamaForCausalLM (LLaVA).");
        return hf ? LoadLlavaHf(json, folder, vce, dtype, visionTowerFolder) : LoadOriginalLlava(json, folder, vce, dtype, visionTowerFolder);
    }

    static LlavaModel LoadLlavaHf(JsonObjectReader json, string folder, VceConfig? vce, ScalarType dtype, string? visionTowerFolder)
    {
        if (visionTowerFolder is not null)
            throw new ArgumentException($"{json.File}: a llava-hf checkpoint holds its own vision tower; pass no vision tower folder.", nameof(visionTowerFolder));
        var visionJson = json.OptionalObject("vision_config");
        if (visionJson?.OptionalString("model_type") is { } visionType && visionType != "clip_vision_model")
            throw visionJson.FieldError("model_type", $"is \"{visionType}\"; only a CLIP vision tower (\"clip_vision_model\") is supported.");
        var vision = visionJson is null ? ClipVitLarge336 : ClipFields(visionJson, transformersDefaults: true);
        var textJson = json.OptionalObject("text_config");
        if (textJson?.OptionalString("model_type") is { } textType && textType != "llama")
            throw textJson.FieldError("model_type", $"is \"{textType}\"; only a LLaMA decoder (\"llama\") is supported.");
        var text = textJson is null ? new LlamaConfig(VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 32, NumAttentionHeads: 32,
            NumKeyValueHeads: 32, RmsNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 2048) : LlamaFields(textJson, transformersDefaults: true);
        if (json.OptionalBool("tie_word_embeddings") == true) text = text with { TieWordEmbeddings = true };

        if (json.Kind("vision_feature_layer") is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Number))
            throw json.FieldError("vision_feature_layer", "is a list of layers; only one layer, -2 (LLaVA-1.5's), is supported.");
        OnlySupported(json, "vision_feature_layer", json.OptionalInt("vision_feature_layer"), -2, "LLaVA-1.5's second-to-last layer");
        OnlySupported(json, "vision_feature_select_strategy", json.OptionalString("vision_feature_select_strategy"), "default", "the class token dropped, as LLaVA-1.5 does");
        OnlySupported(json, "projector_hidden_act", json.OptionalString("projector_hidden_act"), "gelu", "LLaVA-1.5's mlp2x_gelu");
        OnlySupported(json, "multimodal_projector_bias", json.OptionalBool("multimodal_projector_bias"), true, "LLaVA-1.5's projector has biases");
        json.OptionalInt("image_token_index");   // the tokenizer's <image> id; the model reads LlavaConfig.ImageTokenId instead

        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        CheckSize(json.File, checkpoint, vision.ParameterCount() + text.ParameterCount() + ProjectorParameters(vision.HiddenSize, text.HiddenSize), text);
        var model = new LlavaModel(new ClipVisionModel(vision, dtype), new LlamaForCausalLM(text, dtype), vce, dtype);
        // Newer transformers nest the parts under "model." and keep lm_head at the top; older ones nest the decoder under "language_model.".
        bool nested = checkpoint.Names.Any(n => n.StartsWith("model.", StringComparison.Ordinal));
        var projector = new ProjectorKeys(nested ? "model.multi_modal_projector." : "multi_modal_projector.", HfNames: true);
        string FileKey(string key) =>
            key.StartsWith("connector.mm_projector.", StringComparison.Ordinal) ? projector.FileKey(key["connector.mm_projector.".Length..])
            : key.StartsWith("language_model.model.", StringComparison.Ordinal) ? (nested ? "model.language_model." + key["language_model.model.".Length..] : key)
            : key.StartsWith("language_model.lm_head.", StringComparison.Ordinal) ? (nested ? key["language_model.".Length..] : key)
            : nested ? "model." + key : key;   // vision_tower.vision_model.*
        LoadParts(model, checkpoint, FileKey, text.TieWordEmbeddings);
        return model;
    }

    static LlavaModel LoadOriginalLlava(JsonObjectReader json, string folder, VceConfig? vce, ScalarType dtype, string? visionTowerFolder)
    {
        string tower = json.OptionalString("mm_vision_tower") ?? "a CLIP vision tower";
        if (visionTowerFolder is null)
            throw new ArgumentException($"{json.File}: an original LLaVA checkpoint does not hold its vision tower ({tower}); pass the folder of that CLIP model as the vision tower folder.", nameof(visionTowerFolder));
        OnlySupported(json, "mm_vision_select_layer", json.OptionalInt("mm_vision_select_layer"), -2, "LLaVA-1.5's second-to-last layer");
        OnlySupported(json, "mm_vision_select_feature", json.OptionalString("mm_vision_select_feature"), "patch", "the class token dropped");
        OnlySupported(json, "mm_projector_type", json.OptionalString("mm_projector_type"), "mlp2x_gelu", "LLaVA-1.5's projector");
        var text = LlamaFields(json, transformersDefaults: false);
        var vision = LoadClipVision(visionTowerFolder, dtype);
        if (json.OptionalInt("mm_hidden_size") is { } width && width != vision.Config.HiddenSize)
            throw json.FieldError("mm_hidden_size", $"is {width}, but the vision tower's width is {vision.Config.HiddenSize}.");

        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        CheckSize(json.File, checkpoint, text.ParameterCount() + ProjectorParameters(vision.Config.HiddenSize, text.HiddenSize), text);
        var model = new LlavaModel(vision, new LlamaForCausalLM(text, dtype), vce, dtype);
        var projector = new ProjectorKeys("model.mm_projector.", HfNames: false);
        string FileKey(string key) =>
            key.StartsWith("connector.mm_projector.", StringComparison.Ordinal) ? projector.FileKey(key["connector.mm_projector.".Length..])
            : key["language_model.".Length..];
        LoadParts(model, checkpoint, FileKey, text.TieWordEmbeddings, skipVisionTower: true);
        return model;
    }

    /// <summary>
    /// One strict load of the model's vision tower (unless skipped), projector and decoder; VCE, new in these layouts,
    /// is left as initialised. A tied lm_head may be absent; it is the embedding either way.
    /// </summary>
    static void LoadParts(LlavaModel model, SafetensorsCheckpoint checkpoint, Func<string, string> fileKeyOf, bool tied, bool skipVisionTower = false)
    {
        var targets = model.state_dict()
            .Where(kv => !kv.Key.StartsWith("connector.vce.", StringComparison.Ordinal)
                && !(skipVisionTower && kv.Key.StartsWith("vision_tower.", StringComparison.Ordinal)))
            .Select(kv => (kv.Key, kv.Value));
        StrictWeights.Load(targets, checkpoint, fileKeyOf,
            ignorable: IsSavedBuffer,
            optional: key => tied && key == "language_model.lm_head.weight");
        if (tied) model.language_model.lm_head.weight = model.language_model.model.embed_tokens.weight!;
    }

    /// <summary>
    /// Buffers older transformers saved beside the weights (LLaMA's rotary <c>inv_freq</c>, CLIP's <c>position_ids</c>):
    /// this project computes them, so a checkpoint may carry them unused and they are no parameters.
    /// </summary>
    static bool IsSavedBuffer(string key) =>
        key.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal) || key.EndsWith("vision_model.embeddings.position_ids", StringComparison.Ordinal);

    // Far above any released model's widths, layer counts and vocabularies; a size above it is a corrupted config.
    const int MaxSize = 1 << 20;

    static long ProjectorParameters(long visionWidth, long languageWidth) => visionWidth * languageWidth + languageWidth + languageWidth * languageWidth + languageWidth;

    /// <summary>
    /// Before the model is built: the config's sizes must not ask for more than twice the parameters the checkpoint holds
    /// (a tied output head may be absent from it), so a config that asks for a huge model is refused without allocating
    /// it, and what is allocated stays within twice the files' size; the strict load then names every key that does not fit.
    /// </summary>
    static void CheckSize(string configFile, SafetensorsCheckpoint checkpoint, long implied, LlamaConfig text)
    {
        long held = checkpoint.Names.Where(n => !IsSavedBuffer(n)).Sum(n => checkpoint.Entry(n).ElementCount);
        long head = text.TieWordEmbeddings ? (long)text.VocabSize * text.HiddenSize : 0;
        if (implied - head > 2 * held)
            throw new InvalidFileException(configFile, $"its sizes make a model of {implied:N0} parameters, more than twice the {held:N0} that {checkpoint.Source} holds: " +
                "the config and the weights do not belong together (nothing was allocated).");
    }

    /// <summary>A config value this project implements in one form only: absent is taken as that form, anything else is refused.</summary>
    static void OnlySupported(JsonObjectReader json, string field, object? value, object supported, string why)
    {
        if (value is not null && !value.Equals(supported))
            throw json.FieldError(field, $"is {JsonSerializer.Serialize(value)}; only {JsonSerializer.Serialize(supported)} ({why}) is supported.");
    }

    /// <summary>
    /// The SentencePiece tokenizer of a LLaMA-family folder (<c>tokenizer.model</c>), through
    /// Microsoft.ML.Tokenizers; it adds the beginning-of-sentence token as LLaMA does.
    /// </summary>
    public static LlamaTokenizer LoadTokenizer(string folder)
    {
        string path = Path.Combine(Path.GetFullPath(folder), "tokenizer.model");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no SentencePiece tokenizer.model in the model folder.");
        return LoadTokenizerFile(path);
    }

    /// <summary>A SentencePiece <c>tokenizer.model</c> given by its path, adding <c>&lt;s&gt;</c> as LLaMA does.</summary>
    public static LlamaTokenizer LoadTokenizerFile(string path)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such SentencePiece tokenizer.model.");
        using var stream = File.OpenRead(path);
        try
        {
            return LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidFileException(path, $"not a SentencePiece BPE model this tokenizer can read ({e.Message}).", e);
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
            throw new InvalidFileException(json.File, e.Message, e);
        }
    }
}
