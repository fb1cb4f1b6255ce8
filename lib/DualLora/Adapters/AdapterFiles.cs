using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// Adapters on disk in HF PEFT's layout: a folder with <c>adapter_config.json</c> (<c>peft_type</c> and the
/// method's fields) and <c>adapter_model.safetensors</c>, keys <c>base_model.model.&lt;module path&gt;.lora_A.weight</c>
/// and so on (Dual-LoRA adds <c>lora_T</c> and <c>lora_ln</c>; a LoRA-MoE stores its experts side by side in
/// <c>lora_A</c> and <c>lora_B</c> and its router as <c>lora_router</c>); the weights of modules_to_save follow
/// as <c>base_model.model.&lt;module path&gt;.&lt;parameter&gt;</c>. Loading is strict and all-or-nothing.
/// </summary>
public static class AdapterFiles
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    const string Prefix = "base_model.model.";
    // Far above any adapter in use (LLaVA's is 128, the paper's 16 and 32), and small enough that a config cannot ask for absurd sizes.
    const int MaxRank = 65_536, MaxExperts = 1_024;

    public static void Save(AdapterHandle handle, string folder)
    {
        Directory.CreateDirectory(folder);
        var tensors = SavedParameters(handle).Select(p => new KeyValuePair<string, Tensor>(p.Key, p.Parameter)).ToList();
        SafetensorsWriter.Write(Path.Combine(folder, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), ConfigJson(handle.Config).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>
    /// Reads the folder's config, injects the adapter into <paramref name="model"/> and loads its weights.
    /// Missing or unexpected keys, mismatched shapes (a different rank, say) or a config this project
    /// cannot honour are reported together, and the model is left exactly as it was.
    /// </summary>
    public static AdapterHandle Load(nn.Module model, string folder, AdapterConfig? expected = null)
    {
        string configPath = Path.Combine(folder, ConfigFile), weightsPath = Path.Combine(folder, WeightsFile);
        var config = ReadConfig(configPath);
        if (expected != null && expected.GetType() != config.GetType())
            throw new InvalidFileException(configPath, $"peft_type is {config.PeftType}, but a {expected.PeftType} adapter was asked for.");
        using var file = SafetensorsCheckpoint.Open(weightsPath);
        config = config.WithTargetsFor(model);
        List<(string Path, AdaptableLinear Layer)> targets;
        try
        {
            targets = AdapterInjection.FindTargets(model, config);
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(configPath, e.Message, e);   // targets this model does not have
        }
        CheckAgainstWeights(config, targets, configPath, file);

        AdapterHandle handle;
        try
        {
            handle = AdapterInjection.Inject(model, config, targets);
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(configPath, e.Message, e);   // modules to save that this model does not have
        }
        try
        {
            StrictWeights.Load(SavedParameters(handle).Select(p => (p.Key, (Tensor)p.Parameter)), file, key => key);
            return handle;
        }
        catch
        {
            handle.Remove();
            throw;
        }
    }

    /// <summary>
    /// Before anything is allocated: the adapter the config describes on its target layers has at most twice the
    /// parameters the weights file holds, so a huge rank is refused without building it and what is built stays within
    /// twice the file; the strict load then names every key that does not fit.
    /// </summary>
    static void CheckAgainstWeights(AdapterConfig config, List<(string Path, AdaptableLinear Layer)> targets, string configPath, SafetensorsCheckpoint file)
    {
        long implied = ParameterBudget.Count(config, targets.Select(t => (t.Path, t.Layer.InFeatures, t.Layer.OutFeatures)));
        long held = file.Names.Where(n => n.Contains(".lora_", StringComparison.Ordinal)).Sum(n => file.Entry(n).ElementCount);
        if (implied > 2 * held)
            throw new InvalidFileException(configPath, $"the {config.PeftType} adapter it describes has {implied:N0} parameters on its {targets.Count} layers, " +
                $"more than twice the {held:N0} that {WeightsFile} holds: the config and the weights do not belong together (nothing was allocated).");
    }

    /// <summary>
    /// Loads a saved adapter's weights into adapters already injected (resuming a run): the folder's config must
    /// equal <paramref name="handle"/>'s field for field, and the weights must fit exactly; every difference is
    /// listed, and nothing is copied unless all fits.
    /// </summary>
    public static void LoadWeights(AdapterHandle handle, string folder)
    {
        string configPath = Path.Combine(folder, ConfigFile);
        var saved = ConfigJson(ReadConfig(configPath));
        var current = ConfigJson(handle.Config);
        var differences = saved.Select(f => f.Key).Union(current.Select(f => f.Key))
            .Select(key => (key, Saved: saved[key]?.ToJsonString() ?? "null", Current: current[key]?.ToJsonString() ?? "null"))
            .Where(d => d.Saved != d.Current)
            .Select(d => $"{d.key}: {d.Saved} in the file, {d.Current} in this run").ToList();
        if (differences.Count > 0)
            throw new InvalidFileException(configPath, $"describes another adapter:\n  {string.Join("\n  ", differences)}");
        using var file = SafetensorsCheckpoint.Open(Path.Combine(folder, WeightsFile));
        StrictWeights.Load(SavedParameters(handle).Select(p => (p.Key, (Tensor)p.Parameter)), file, key => key);
    }

    static IEnumerable<(string Key, TorchSharp.Modules.Parameter Parameter)> SavedParameters(AdapterHandle handle)
    {
        foreach (var (name, parameter) in handle.AdapterNamedParameters()) yield return (Prefix + name, parameter);
        foreach (var (name, parameter) in handle.Model.named_parameters())
            if (handle.TrainableModules.Any(m => name.StartsWith(m + ".", StringComparison.Ordinal))) yield return (Prefix + name, parameter);
    }

    /// <summary>The config as adapter_config.json holds it.</summary>
    public static JsonObject ConfigJson(AdapterConfig config)
    {
        var json = new JsonObject
        {
            ["peft_type"] = config.PeftType,
            ["task_type"] = "CAUSAL_LM",
            ["target_modules"] = config.TargetRegex is { } regex ? JsonValue.Create(regex) : new JsonArray((config.TargetModules ?? AdapterConfig.DefaultTargetModules).Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            ["modules_to_save"] = config.ModulesToSave.Count == 0 ? null : new JsonArray(config.ModulesToSave.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
        };
        IReadOnlyDictionary<string, int> pattern = config switch
        {
            LoraConfig l => l.RankPattern, DualLoraConfig d => d.RankPattern, MoeLoraConfig m => m.RankPattern, _ => new Dictionary<string, int>(),
        };
        json["rank_pattern"] = new JsonObject(pattern.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value))));
        switch (config)
        {
            case LoraConfig lora:
                json["r"] = lora.Rank; json["lora_alpha"] = lora.Alpha; json["lora_dropout"] = lora.Dropout; json["use_rslora"] = lora.UseRsLora;
                break;
            case DualLoraConfig dual:
                json["r"] = dual.Rank; json["lora_alpha"] = dual.EffectiveAlpha; json["lora_dropout"] = dual.Dropout;
                json["use_layer_norm"] = dual.UseLayerNorm; json["use_relu"] = dual.UseRelu;
                break;
            case MoeLoraConfig moe:
                json["routing"] = RoutingName(moe.Routing); json["num_experts"] = moe.Experts; json["expert_r"] = moe.ExpertRank;
                json["expert_ranks"] = new JsonArray(moe.Ranks.Select(r => (JsonNode)JsonValue.Create(r)).ToArray());
                json["lora_alpha"] = moe.Alpha; json["top_k"] = moe.TopK; json["lora_dropout"] = moe.Dropout; json["aux_loss_weight"] = moe.AuxiliaryLossWeight;
                break;
        }
        return json;
    }

    static string RoutingName(Routing routing) => routing switch { Routing.Dense => "dense", Routing.TopK => "top_k", _ => "rectified" };

    /// <summary>
    /// Fields PEFT writes that do not change the computation, and the value each must have if it is one
    /// this project cannot honour (null: any value is fine).
    /// </summary>
    static readonly Dictionary<string, string?> PeftFields = new()
    {
        ["task_type"] = null, ["base_model_name_or_path"] = null, ["revision"] = null, ["inference_mode"] = null,
        ["auto_mapping"] = null, ["init_lora_weights"] = null, ["peft_version"] = null, ["megatron_core"] = null,
        ["bias"] = "\"none\"", ["fan_in_fan_out"] = "false", ["use_dora"] = "false", ["lora_bias"] = "false",
        ["layers_to_transform"] = "null", ["layers_pattern"] = "null", ["alpha_pattern"] = "{}",
        ["megatron_config"] = "null", ["loftq_config"] = "{}", ["layer_replication"] = "null", ["exclude_modules"] = "null",
        ["eva_config"] = "null", ["corda_config"] = "null", ["trainable_token_indices"] = "null", ["runtime_config"] = null,
        ["use_qalora"] = "false", ["qalora_group_size"] = null, ["target_parameters"] = "null",
    };

    public static AdapterConfig ReadConfig(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no adapter config here.");
        var json = JsonObjectReader.ReadFile(path);

        string peftType = json.String("peft_type");
        AdapterConfig config = peftType switch
        {
            "LORA" => new LoraConfig(json.Int("r", 1, MaxRank), json.OptionalDouble("lora_alpha") ?? 8.0, json.OptionalDouble("lora_dropout") ?? 0.0, json.OptionalBool("use_rslora") ?? false),
            "DUAL_LORA" => new DualLoraConfig(json.Int("r", 1, MaxRank), json.OptionalDouble("lora_alpha"), json.OptionalDouble("lora_dropout") ?? 0.0,
                json.OptionalBool("use_layer_norm") ?? true, json.OptionalBool("use_relu") ?? true),
            "MOE_LORA" => new MoeLoraConfig(
                json.Choice("routing", new Dictionary<string, Routing> { ["dense"] = Routing.Dense, ["top_k"] = Routing.TopK, ["rectified"] = Routing.Rectified }),
                json.Int("num_experts", 1, MaxExperts), json.Int("expert_r", 1, MaxRank), json.OptionalDouble("lora_alpha") ?? 16.0, json.OptionalInt("top_k") ?? 2,
                json.OptionalDouble("lora_dropout") ?? 0.0, json.OptionalDouble("aux_loss_weight") ?? 0.0, json.OptionalIntList("expert_ranks", 1, MaxRank)),
            _ => throw json.Error($"peft_type \"{peftType}\" is not supported; supported: LORA, DUAL_LORA, MOE_LORA."),
        };
        if (json.OptionalObject("rank_pattern") is { } rankPattern)
        {
            var pattern = rankPattern.Names.ToDictionary(name => name, name => rankPattern.Int(name, 1, MaxRank));
            config = config switch
            {
                LoraConfig l => l with { RankPattern = pattern },
                DualLoraConfig d => d with { RankPattern = pattern },
                MoeLoraConfig m => m with { RankPattern = pattern },
                _ => config,
            };
        }

        config = json.Kind("target_modules") switch
        {
            JsonValueKind.Array => config with { TargetModules = json.StringList("target_modules") },
            JsonValueKind.Undefined or JsonValueKind.Null => throw json.FieldError("target_modules", "is missing (a list of names or a regular expression)."),
            _ => config with { TargetRegex = json.String("target_modules") },
        };
        if (json.OptionalStringList("modules_to_save") is { } save) config = config with { ModulesToSave = save };

        foreach (var (name, value) in json.UnreadFields())
        {
            string actual = value?.ToJsonString() ?? "null";
            if (PeftFields.TryGetValue(name, out string? required) && required != null && actual != required)
                throw json.FieldError(name, $"is {actual}; this project supports only {required}.");
        }
        json.RejectUnknownFields([.. PeftFields.Keys]);
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidFileException(path, e.Message, e);
        }
        return config;
    }
}
