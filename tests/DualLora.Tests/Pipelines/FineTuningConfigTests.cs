using DualLora.IO;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.Pipelines;
using DualLora.Training;
using DualLora.Vision;

namespace DualLora.Tests.Pipelines;

public sealed class FineTuningConfigTests : IDisposable
{
    readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    string Write(string json, string name = "config.json")
    {
        Directory.CreateDirectory(_folder.File("runs"));
        string path = Path.Combine(_folder.File("runs"), name);
        File.WriteAllText(path, json);
        return path;
    }

    const string Minimal = """{"model": "m", "data": {"train": "d/train.json", "images": "d/img"}, "output": "out"}""";

    [Fact]
    public void The_shipped_example_config_reads_and_points_at_the_pretrained_base()
    {
        string root = Path.GetDirectoryName(DualLora.Runtime.RuntimeEnvironment.Find(AppContext.BaseDirectory).SourceFile)!;
        var config = FineTuningConfig.Read(Path.Combine(root, "configs", "scenes-dual-lora.json"));
        Assert.Equal(Path.Combine(root, "data", "pretrained", "small-llava"), config.Model);
        Assert.True(File.Exists(config.Tokenizer), config.Tokenizer);
        Assert.Equal(Path.Combine(root, "out", "scenes", "training.json"), config.Data.Train);
        Assert.Equal(("dual_lora", 8), (config.Adapter.Method, config.Adapter.Rank));
        Assert.NotNull(config.Vce);
    }

    [Fact]
    public void Every_field_is_read_and_relative_paths_resolve_against_the_config_file()
    {
        string file = Write("""
            {
              "model": "../models/llava", "tokenizer": "tok/sp.model",
              "vce": {"levels": [-2, -4], "anchor_level": -4, "heads": 4, "points": 3, "output_norm": true},
              "data": {"train": "d/train.json", "images": "/abs/images", "evaluation": "d/eval.json"},
              "adapter": {"method": "moe_top_k", "rank": 6, "alpha": 12.5, "dropout": 0.1, "experts": 3, "top_k": 1, "aux_loss_weight": 0.01},
              "stages": {"stage1": {"epochs": 0.5, "learning_rate": 0.002},
                         "stage2": {"steps": 40, "adapter_learning_rate": 0.0003, "connector_learning_rate": 0.00003}},
              "batch_size": 4, "gradient_accumulation": 2, "warmup_ratio": 0.1, "max_grad_norm": 0.5, "weight_decay": 0.01,
              "schedule": "constant", "max_length": 512, "seed": 42, "checkpoint_every": 10, "precision": "bfloat16",
              "evaluation": {"batch_size": 3, "max_new_tokens": 9}, "tower_cache_mb": 7,
              "output": "out/run1"
            }
            """);
        var config = FineTuningConfig.Read(file);
        string runs = _folder.File("runs");

        Assert.Equal(file, config.File);
        Assert.Equal(Path.GetFullPath(Path.Combine(runs, "..", "models", "llava")), config.Model);
        Assert.Equal(Path.Combine(runs, "tok", "sp.model"), config.Tokenizer);
        Assert.Equal(new VceConfig([-2, -4], -4, 4, 3, true) with { Levels = config.Vce!.Levels }, config.Vce);
        Assert.Equal([-2, -4], config.Vce.Levels!);
        Assert.Equal(new DataFiles(Path.Combine(runs, "d", "train.json"), Path.GetFullPath("/abs/images"), Path.Combine(runs, "d", "eval.json")), config.Data);
        Assert.Equal(new AdapterSettings("moe_top_k", 6, 12.5, 0.1, 3, 1, 0.01), config.Adapter);
        Assert.Equal(new Stage1Settings(new StageLength(null, 0.5), 0.002), config.Stage1);
        Assert.Equal(new Stage2Settings(new StageLength(40, null), 0.0003, 0.00003), config.Stage2);
        Assert.Equal((4, 2, 0.1, 0.5, 0.01, ScheduleKind.Constant, 512, 42L, 10),
            (config.BatchSize, config.GradientAccumulation, config.WarmupRatio, config.MaxGradNorm, config.WeightDecay, config.Schedule, config.MaxLength, config.Seed, config.CheckpointEvery));
        Assert.Equal(new EvaluationSettings(3, 9), config.Evaluation);
        Assert.Equal(TrainingPrecision.BFloat16, config.Precision);
        Assert.Equal(7, config.TowerCacheMegabytes);
        Assert.Equal(Path.Combine(runs, "out", "run1"), config.Output);

        var adapter = Assert.IsType<MoeLoraConfig>(config.Adapter.ToConfig());
        Assert.Equal((Routing.TopK, 3, 6, 12.5, 1, 0.1, 0.01), (adapter.Routing, adapter.Experts, adapter.ExpertRank, adapter.Alpha, adapter.TopK, adapter.Dropout, adapter.AuxiliaryLossWeight));

        // The copy a run keeps reads back as the same config, from anywhere (its paths are absolute).
        string copy = _folder.File("copy.json");
        config.Write(copy);
        var reread = FineTuningConfig.Read(copy);
        Assert.Equal(config with { Vce = null, File = null }, reread with { Vce = null, File = null });
        Assert.Equal(config.Vce with { Levels = null }, reread.Vce! with { Levels = null });
        Assert.Equal(config.Vce.Levels, reread.Vce!.Levels!);
    }

    [Fact]
    public void Left_out_fields_take_the_recipe_defaults()
    {
        var config = FineTuningConfig.Read(Write(Minimal));
        string runs = _folder.File("runs");
        Assert.Equal(Path.Combine(runs, "m", "tokenizer.model"), config.Tokenizer);   // the model folder's
        Assert.Equal(new VceConfig(), config.Vce);
        Assert.Null(config.Data.Evaluation);
        // METHOD.md §4: Dual-LoRA r 32, α 64, dropout 0.05; stage 1 at 1e-3; stage 2 at 2e-4 (adapter) and 2e-5 (connector); one epoch each.
        Assert.Equal(new AdapterSettings("dual_lora", 32, 64, 0.05), config.Adapter);
        Assert.Equal(new Stage1Settings(new StageLength(null, 1), 1e-3), config.Stage1);
        Assert.Equal(new Stage2Settings(new StageLength(null, 1), 2e-4, 2e-5), config.Stage2);
        Assert.Equal((8, 1, 0.03, 1.0, 0.0, ScheduleKind.Cosine, 2048, 0L, 50),
            (config.BatchSize, config.GradientAccumulation, config.WarmupRatio, config.MaxGradNorm, config.WeightDecay, config.Schedule, config.MaxLength, config.Seed, config.CheckpointEvery));
        var dual = Assert.IsType<DualLoraConfig>(config.Adapter.ToConfig());
        Assert.Equal((32, 64.0, 0.05), (dual.Rank, dual.EffectiveAlpha, dual.Dropout));

        Assert.Null(FineTuningConfig.Read(Write(Minimal.Replace("\"output\"", "\"vce\": false, \"output\""), "novce.json")).Vce);
        var moe = FineTuningConfig.Read(Write(Minimal.Replace("\"output\"", "\"adapter\": {\"method\": \"moe_rectified\"}, \"output\""), "moe.json")).Adapter;
        Assert.Equal(new AdapterSettings("moe_rectified", 8, 16, 0.05, 4, 2, 0), moe);
    }

    [Fact]
    public void Steps_from_epochs_count_whole_batches_and_round_up_to_optimizer_steps()
    {
        // 10 samples in batches of 3: 3 batches an epoch; 2.5 epochs = 7.5 batches; 2 batches a step: ⌈3.75⌉ = 4.
        Assert.Equal(4, new StageLength(null, 2.5).StepsFor(10, 3, 2));
        Assert.Equal(7, new StageLength(7, null).StepsFor(10, 3, 2));
        Assert.True(new StageLength(0, null).IsZero);
        Assert.True(new StageLength(null, 0).IsZero);
    }

    [Theory]
    [InlineData("\"adapter\": {\"method\": \"dora\"}", "field 'adapter.method' is \"dora\"; allowed values: \"dual_lora\", \"lora\", \"moe_dense\", \"moe_top_k\", \"moe_rectified\"")]
    [InlineData("\"adapter\": {\"rank\": 0}", "field 'adapter.rank' is 0; allowed values: whole numbers from 1")]
    [InlineData("\"adapter\": {\"rank\": 4.5}", "field 'adapter.rank' is 4.5")]
    [InlineData("\"adapter\": {\"dropout\": 1}", "field 'adapter.dropout' is 1; it must be in [0, 1).")]
    [InlineData("\"adapter\": {\"alpha\": 0}", "field 'adapter.alpha' is 0; it must be more than 0.")]
    [InlineData("\"adapter\": {\"method\": \"lora\", \"experts\": 4}", "field 'adapter.experts' applies to the mixtures")]
    [InlineData("\"adapter\": {\"method\": \"moe_top_k\", \"experts\": 2, \"top_k\": 3}", "field 'adapter.top_k' is 3; it must be at most the number of experts (2)")]
    [InlineData("\"adapter\": {\"method\": \"moe_dense\", \"aux_loss_weight\": 0.1}", "field 'adapter.aux_loss_weight' must be 0 for dense routing")]
    [InlineData("\"adapter\": {\"ranks\": 4}", "unknown field 'adapter.ranks'")]
    [InlineData("\"adapter\": {\"method\": \"lora\", \"relu\": false}", "field 'adapter.relu' applies to dual_lora")]
    [InlineData("\"adapter\": {\"method\": \"lora\", \"expert_ranks\": [1, 2]}", "field 'adapter.expert_ranks' applies to the mixtures")]
    [InlineData("\"adapter\": {\"method\": \"moe_dense\", \"expert_ranks\": [1, 2]}", "field 'adapter.expert_ranks' holds 2 ranks for 4 experts")]
    [InlineData("\"adapter\": {\"method\": \"moe_dense\", \"rank_pattern\": {\"q_proj\": 3}}", "field 'adapter.rank_pattern.q_proj' is 3; a mixture's layer needs a total rank of at least 4")]
    [InlineData("\"adapter\": {\"rank_pattern\": {\"q_proj\": 0}}", "field 'adapter.rank_pattern.q_proj' is 0")]
    [InlineData("\"connector\": 5", "field 'connector' is 5; it must be a JSON string")]
    [InlineData("\"stages\": {\"stage1\": {\"steps\": 3, \"epochs\": 1}}", "field 'stages.stage1.steps' and 'epochs' are both given")]
    [InlineData("\"stages\": {\"stage1\": {\"steps\": -1}}", "field 'stages.stage1.steps' is -1; allowed values: whole numbers from 0")]
    [InlineData("\"stages\": {\"stage1\": {\"epochs\": -1}}", "field 'stages.stage1.epochs' is -1")]
    [InlineData("\"stages\": {\"stage1\": {\"learning_rat\": 0.1}}", "unknown field 'stages.stage1.learning_rat'")]
    [InlineData("\"stages\": {\"stage2\": {\"learning_rate\": 0.1}}", "unknown field 'stages.stage2.learning_rate'")]
    [InlineData("\"stages\": {\"stage1\": {\"learning_rate\": 0}}", "field 'stages.stage1.learning_rate' is 0; it must be in (0, 1].")]
    [InlineData("\"stages\": {\"stage3\": {}}", "unknown field 'stages.stage3'")]
    [InlineData("\"stages\": {\"stage1\": {\"steps\": 0}, \"stage2\": {\"epochs\": 0}}", "field 'stages' trains nothing")]
    [InlineData("\"schedule\": \"linear\"", "field 'schedule' is \"linear\"; allowed values: \"cosine\", \"constant\"")]
    [InlineData("\"warmup_ratio\": 1.5", "field 'warmup_ratio' is 1.5; it must be in [0, 1].")]
    [InlineData("\"batch_size\": 0", "field 'batch_size' is 0")]
    [InlineData("\"batch_size\": \"8\"", "field 'batch_size' is \"8\"; it must be a JSON number, not string")]
    [InlineData("\"gradient_accumulation\": 0", "field 'gradient_accumulation' is 0")]
    [InlineData("\"max_grad_norm\": -1", "field 'max_grad_norm' is -1; it must be 0 (no clipping) or more.")]
    [InlineData("\"max_length\": 1", "field 'max_length' is 1")]
    [InlineData("\"checkpoint_every\": -2", "field 'checkpoint_every' is -2")]
    [InlineData("\"vce\": \"yes\"", "field 'vce' must be true, false, or an object")]
    [InlineData("\"vce\": {\"heads\": 0}", "field 'vce.heads' is 0")]
    [InlineData("\"vce\": {\"levels\": [-2, -3], \"anchor_level\": -5}", "field 'vce.anchor_level' is -5, which is not one of the levels [-2, -3]")]
    [InlineData("\"vce\": {\"levels\": [2]}", "field 'vce.levels[0]' is 2")]
    [InlineData("\"evaluation\": {\"max_new_tokens\": 0}", "field 'evaluation.max_new_tokens' is 0")]
    [InlineData("\"learning_rate\": 0.1", "unknown field 'learning_rate'")]
    [InlineData("\"precision\": \"fp16\"", "field 'precision' is \"fp16\"; allowed values: \"float32\", \"bfloat16\"")]
    public void A_bad_field_is_refused_naming_the_file_and_the_field(string field, string expected)
    {
        string file = Write(Minimal.Replace("\"output\"", field + ", \"output\""));
        var error = Assert.Throws<InvalidFileException>(() => FineTuningConfig.Read(file));
        Assert.StartsWith(file + ": ", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("""{"data": {"train": "t.json", "images": "i"}, "output": "o"}""", "field 'model' is missing")]
    [InlineData("""{"model": "m", "output": "o"}""", "field 'data' is missing")]
    [InlineData("""{"model": "m", "data": {"train": "t.json"}, "output": "o"}""", "field 'data.images' is missing")]
    [InlineData("""{"model": "m", "data": {"train": "t.json", "images": "i"}}""", "field 'output' is missing")]
    [InlineData("""{"model": "m", "data": {"train": "t.json", "images": "i", "validation": "v.json"}, "output": "o"}""", "unknown field 'data.validation'")]
    [InlineData("""{"model": "m", """, "not valid JSON")]
    [InlineData("""[]""", "the top level must be a JSON object")]
    public void A_missing_field_or_a_broken_file_is_refused_naming_the_file(string json, string expected)
    {
        string file = Write(json);
        var error = Assert.Throws<InvalidFileException>(() => FineTuningConfig.Read(file));
        Assert.StartsWith(file + ": ", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Budget_matched_adapters_and_a_shared_connector_are_written_and_read_back()
    {
        var layers = Enumerable.Range(0, 4).SelectMany(i => new[] { ($"model.layers.{i}.self_attn.q_proj", 192L, 192L), ($"model.layers.{i}.self_attn.v_proj", 192L, 64L) }).ToList();
        long budget = ParameterBudget.Count(new DualLoraConfig(4), layers);
        AdapterConfig[] adapters =
        [
            ParameterBudget.Match(new LoraConfig(), layers, budget),
            ParameterBudget.Match(new MoeLoraConfig(Routing.TopK), layers, budget * 3),
            new DualLoraConfig(4, Dropout: 0.1, UseLayerNorm: false, UseRelu: false),
        ];
        Assert.NotEmpty(((LoraConfig)adapters[0]).RankPattern);
        Assert.NotNull(((MoeLoraConfig)adapters[1]).ExpertRanks);
        foreach (var adapter in adapters)
        {
            var config = FineTuningConfig.Read(Write(Minimal)) with { Adapter = AdapterSettings.From(adapter), File = null };
            config = config with { Connector = _folder.File("stage1/final/connector.safetensors") };
            string file = _folder.File("written.json");
            config.Write(file);
            var read = FineTuningConfig.Read(file);
            Assert.Equal(config.Connector, read.Connector);
            var rebuilt = read.Adapter.ToConfig();
            Assert.Equal(adapter.GetType(), rebuilt.GetType());
            Assert.Equal(ParameterBudget.Count(adapter, layers), ParameterBudget.Count(rebuilt, layers));
            foreach (var (path, _, _) in layers)
                Assert.Equal(adapter.ForLayer(path).ParameterCount(192, 64), rebuilt.ForLayer(path).ParameterCount(192, 64));
            Assert.Equal(adapter.Scaling, rebuilt.Scaling, 12);
        }
        var ablation = Assert.IsType<DualLoraConfig>(AdapterSettings.From(adapters[2]).ToConfig());
        Assert.Equal((false, false, 0.1), (ablation.UseLayerNorm, ablation.UseRelu, ablation.Dropout));
    }

    [Fact]
    public void A_missing_config_file_is_named()
    {
        string file = _folder.File("nowhere.json");
        Assert.Equal($"{file}: no such config file.", Assert.Throws<FileNotFoundException>(() => FineTuningConfig.Read(file)).Message);
    }
}
