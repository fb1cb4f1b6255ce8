using System.Text.Json.Nodes;
using DualLora.IO;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;
using SkiaSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Pipelines;

/// <summary>
/// Everything a fine-tuning run needs, written tiny into a temp folder: a llava-hf model folder (random weights, with a
/// character-level SentencePiece tokenizer.model), LLaVA JSON training and evaluation data with grey PNGs, and a config
/// file (paths relative to it) that <see cref="Config"/> writes with any fields changed.
/// </summary>
sealed class TinyRun : IDisposable
{
    // Every character is one token, id = 3 + its index.
    public const string Alphabet = "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:?.,!";
    public const int VocabSize = 3 + 68;

    static readonly string[] Items = ["shirt", "bag", "coat", "shoe"];

    public TempFolder Folder { get; } = new();
    public string Root => Folder.Path;

    public TinyRun()
    {
        WriteModel(Path.Combine(Root, "model"), VocabSize);
        Directory.CreateDirectory(Path.Combine(Root, "data", "images"));
        for (int i = 0; i < Items.Length; i++) WritePng(Path.Combine(Root, "data", "images", $"{Items[i]}.png"), (byte)(40 + 60 * i));
        File.WriteAllText(Path.Combine(Root, "data", "train.json"), Samples("t", 8));
        File.WriteAllText(Path.Combine(Root, "data", "eval.json"), Samples("e", 4));
    }

    public void Dispose() => Folder.Dispose();

    /// <summary>A llava-hf folder (older transformers' key layout) with random weights, and the character tokenizer, for a vocabulary of <paramref name="vocabulary"/>.</summary>
    public static void WriteModel(string folder, int vocabulary)
    {
        Directory.CreateDirectory(folder);
        using var scope = NewDisposeScope();
        var vision = new ClipVisionConfig(HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 3, NumAttentionHeads: 2, ImageSize: 8, PatchSize: 4, NumChannels: 3);
        var text = new LlamaConfig(VocabSize: vocabulary, HiddenSize: 24, IntermediateSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 2,
            RmsNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 2048);
        using var model = Weights.Randomize(new LlavaModel(new ClipVisionModel(vision), new LlamaForCausalLM(text), null), 5, 0.2);
        static string Key(string key) => key switch
        {
            "connector.mm_projector.0.weight" => "multi_modal_projector.linear_1.weight",
            "connector.mm_projector.0.bias" => "multi_modal_projector.linear_1.bias",
            "connector.mm_projector.2.weight" => "multi_modal_projector.linear_2.weight",
            "connector.mm_projector.2.bias" => "multi_modal_projector.linear_2.bias",
            _ => key,
        };
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), model.state_dict().Select(kv => KeyValuePair.Create(Key(kv.Key), kv.Value)).ToList());
        File.WriteAllText(Path.Combine(folder, "config.json"), $$"""
            {
              "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "projector_hidden_act": "gelu",
              "text_config": { "model_type": "llama", "hidden_size": 24, "intermediate_size": 32, "num_hidden_layers": 2,
                               "num_attention_heads": 2, "vocab_size": {{vocabulary}} },
              "vision_config": { "model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 3,
                                 "num_attention_heads": 2, "image_size": 8, "patch_size": 4 },
              "vision_feature_layer": -2, "vision_feature_select_strategy": "default"
            }
            """);
        WriteTokenizer(Path.Combine(folder, "tokenizer.model"), Alphabet);
    }

    public static void WriteTokenizer(string path, string alphabet) =>
        SentencePieceModelFile.WriteBpe(path, alphabet.Select((c, i) => (c.ToString(), -(float)i)).ToList());

    public static void WritePng(string path, byte grey)
    {
        using var bitmap = new SKBitmap(12, 12, SKColorType.Gray8, SKAlphaType.Opaque);
        bitmap.Erase(new SKColor(grey, grey, grey));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    static string Samples(string prefix, int count) => new JsonArray(Enumerable.Range(0, count).Select(i =>
    {
        string item = Items[i % Items.Length];
        return (JsonNode)new JsonObject
        {
            ["id"] = $"{prefix}{i}",
            ["image"] = $"{item}.png",
            ["conversations"] = new JsonArray(
                new JsonObject { ["from"] = "human", ["value"] = i % 2 == 0 ? "<image>\nWhat is it?" : "What is shown?\n<image>" },
                new JsonObject { ["from"] = "gpt", ["value"] = item }),
        };
    }).ToArray()).ToJsonString();

    /// <summary>A small, fast run: both stages a few steps, checkpoints every 2 steps, evaluation on 4 samples.</summary>
    public static JsonObject BaseConfig() => new()
    {
        ["model"] = "model",
        ["vce"] = new JsonObject { ["heads"] = 2, ["points"] = 2 },
        ["data"] = new JsonObject { ["train"] = "data/train.json", ["images"] = "data/images", ["evaluation"] = "data/eval.json" },
        ["adapter"] = new JsonObject { ["method"] = "dual_lora", ["rank"] = 4, ["alpha"] = 8 },
        ["stages"] = new JsonObject
        {
            ["stage1"] = new JsonObject { ["steps"] = 3 },
            ["stage2"] = new JsonObject { ["steps"] = 4, ["adapter_learning_rate"] = 1e-2, ["connector_learning_rate"] = 1e-3 },
        },
        ["batch_size"] = 2,
        ["seed"] = 7,
        ["checkpoint_every"] = 2,
        ["evaluation"] = new JsonObject { ["batch_size"] = 4, ["max_new_tokens"] = 3 },
        ["output"] = "out",
    };

    /// <summary>Writes a config file into the run's folder: <see cref="BaseConfig"/> changed by <paramref name="change"/>.</summary>
    public string Config(Action<JsonObject>? change = null, string name = "finetune.json")
    {
        var json = BaseConfig();
        change?.Invoke(json);
        string path = Path.Combine(Root, name);
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    public string Out(string name = "out") => Path.Combine(Root, name);
}
