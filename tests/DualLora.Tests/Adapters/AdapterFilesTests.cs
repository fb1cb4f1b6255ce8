using DualLora.Adapters;
using DualLora.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Adapters;

public class AdapterFilesTests
{
    [Theory]
    [MemberData(nameof(AdapterMathTests.AllMethods), MemberType = typeof(AdapterMathTests))]
    public void Save_and_load_round_trip_bit_exactly(string method)
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var model = new TinyModel(seed: 3);
        var config = AdapterMathTests.ConfigFor(method) with { ModulesToSave = ["mm_projector"] };
        var handle = AdapterInjection.Inject(model, config);
        using (no_grad()) foreach (var (_, p) in handle.TrainableNamedParameters()) p.normal_();
        model.eval();
        var x = randn(4, 8);
        var expected = model.call(x);
        AdapterFiles.Save(handle, temp.Path);

        var fresh = new TinyModel(seed: 3);
        var loaded = AdapterFiles.Load(fresh, temp.Path);
        fresh.eval();
        Assert.Equal(AdapterFiles.ConfigJson(config).ToJsonString(), AdapterFiles.ConfigJson(loaded.Config).ToJsonString());
        foreach (var ((name, saved), (_, restored)) in handle.TrainableNamedParameters().Zip(loaded.TrainableNamedParameters()))
            TensorAssert.BitEqual(saved, restored, name);
        TensorAssert.BitEqual(expected, fresh.call(x));
    }

    [Fact]
    public void The_files_use_PEFTs_layout()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var handle = AdapterInjection.Inject(new TinyModel(depth: 1), new DualLoraConfig(Rank: 2));
        AdapterFiles.Save(handle, temp.Path);
        using var file = SafetensorsFile.Open(Path.Combine(temp.Path, AdapterFiles.WeightsFile));
        Assert.Equal(new[]
        {
            "base_model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.layers.0.self_attn.q_proj.lora_B.weight",
            "base_model.model.layers.0.self_attn.q_proj.lora_T.weight", "base_model.model.layers.0.self_attn.q_proj.lora_ln.bias",
            "base_model.model.layers.0.self_attn.q_proj.lora_ln.weight",
            "base_model.model.layers.0.self_attn.v_proj.lora_A.weight", "base_model.model.layers.0.self_attn.v_proj.lora_B.weight",
            "base_model.model.layers.0.self_attn.v_proj.lora_T.weight", "base_model.model.layers.0.self_attn.v_proj.lora_ln.bias",
            "base_model.model.layers.0.self_attn.v_proj.lora_ln.weight",
        }, file.Names.Order(StringComparer.Ordinal));
        string config = File.ReadAllText(Path.Combine(temp.Path, AdapterFiles.ConfigFile));
        Assert.Contains("\"peft_type\": \"DUAL_LORA\"", config);
        Assert.Contains("\"lora_alpha\": 4", config);
    }

    [Fact]
    public void A_LoRA_adapter_written_by_hand_in_PEFTs_layout_loads_and_computes_the_expected_output()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        File.WriteAllText(Path.Combine(temp.Path, AdapterFiles.ConfigFile), """
            {
              "alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "tiny-llama",
              "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
              "layer_replication": null, "layers_pattern": null, "layers_to_transform": null, "loftq_config": {},
              "lora_alpha": 4, "lora_dropout": 0.1, "megatron_config": null, "megatron_core": "megatron.core",
              "modules_to_save": null, "peft_type": "LORA", "r": 1, "rank_pattern": {}, "revision": null,
              "target_modules": ["q_proj"], "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false
            }
            """);
        // q_proj of the single layer: A (1 x 8) = all 0.5, B (8 x 1) = 0, 1, ..., 7.
        float[] a = Enumerable.Repeat(0.5f, 8).ToArray(), b = Enumerable.Range(0, 8).Select(i => (float)i).ToArray();
        SafetensorsWriter.Write(Path.Combine(temp.Path, AdapterFiles.WeightsFile),
        [
            new SafetensorsTensor("base_model.model.layers.0.self_attn.q_proj.lora_A.weight", SafetensorsDType.F32, [1, 8], a.SelectMany(BitConverter.GetBytes).ToArray()),
            new SafetensorsTensor("base_model.model.layers.0.self_attn.q_proj.lora_B.weight", SafetensorsDType.F32, [8, 1], b.SelectMany(BitConverter.GetBytes).ToArray()),
        ]);

        var model = new TinyModel(depth: 1);
        var q = model.layers[0].self_attn.q_proj;
        var handle = AdapterFiles.Load(model, temp.Path);
        model.eval();
        Assert.Equal(AdapterFiles.ConfigJson(new LoraConfig(Rank: 1, Alpha: 4, Dropout: 0.1) { TargetModules = ["q_proj"] }).ToJsonString(), AdapterFiles.ConfigJson(handle.Config).ToJsonString());

        var x = tensor(new float[] { 1, -1, 2, 0, 0.5f, 1, -2, 3 });
        float[] w = q.weight.data<float>().ToArray(), bias = q.bias!.data<float>().ToArray(), input = x.data<float>().ToArray();
        double ax = input.Sum() * 0.5;                                          // A x
        var expected = Enumerable.Range(0, 8).Select(o =>
            Enumerable.Range(0, 8).Sum(i => (double)w[o * 8 + i] * input[i]) + bias[o] + 4.0 / 1 * b[o] * ax).ToArray();
        var actual = q.call(x).data<float>().ToArray();
        for (int o = 0; o < 8; o++) Assert.Equal(expected[o], actual[o], 4);
    }

    [Fact]
    public void Loading_is_strict_lists_every_fault_and_applies_nothing()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        AdapterFiles.Save(AdapterInjection.Inject(new TinyModel(depth: 1), new LoraConfig(Rank: 2)), temp.Path);
        string weights = Path.Combine(temp.Path, AdapterFiles.WeightsFile), config = Path.Combine(temp.Path, AdapterFiles.ConfigFile);
        using (var file = SafetensorsFile.Open(weights))
        {
            var kept = file.Names.Where(n => !n.Contains("v_proj.lora_B")).Select(n => new SafetensorsTensor(n, file[n].DType, file[n].Shape, file.ReadBytes(n))).ToList();
            kept.Add(new SafetensorsTensor("base_model.model.layers.0.self_attn.k_proj.lora_A.weight", SafetensorsDType.F32, [1], new byte[4]));
            file.Dispose();
            SafetensorsWriter.Write(weights, kept);
        }
        var model = new TinyModel(depth: 1);
        var keysBefore = model.state_dict().Keys.ToList();
        var error = Assert.Throws<InvalidFileException>(() => AdapterFiles.Load(model, temp.Path));
        Assert.Contains("missing keys: base_model.model.layers.0.self_attn.v_proj.lora_B.weight", error.Message);
        Assert.Contains("unexpected keys: base_model.model.layers.0.self_attn.k_proj.lora_A.weight", error.Message);
        Assert.Equal(keysBefore, model.state_dict().Keys.ToList());
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));

        File.WriteAllText(config, File.ReadAllText(config).Replace("\"r\": 2", "\"r\": 3"));
        AdapterFiles.Save(AdapterInjection.Inject(new TinyModel(depth: 1), new LoraConfig(Rank: 2)), Path.Combine(temp.Path, "good"));
        File.Copy(Path.Combine(temp.Path, "good", AdapterFiles.WeightsFile), weights, overwrite: true);
        var rank = Assert.Throws<InvalidFileException>(() => AdapterFiles.Load(new TinyModel(depth: 1), temp.Path));
        Assert.Contains("shape mismatches: base_model.model.layers.0.self_attn.q_proj.lora_A.weight is [2, 8] in the file, [3, 8] in the model", rank.Message);

        var other = Assert.Throws<InvalidFileException>(() => AdapterFiles.Load(new TinyModel(depth: 1), Path.Combine(temp.Path, "good"), new DualLoraConfig()));
        Assert.Contains("peft_type is LORA, but a DUAL_LORA adapter was asked for", other.Message);
    }

    [Theory]
    [InlineData("\"r\": 2", "\"r\": \"two\"", "field 'r' is \"two\"")]
    [InlineData("\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\"", "peft_type \"IA3\" is not supported")]
    [InlineData("\"fan_in_fan_out\": false", "\"fan_in_fan_out\": true", "field 'fan_in_fan_out' is true; this project supports only false")]
    [InlineData("\"bias\": \"none\"", "\"bias\": \"none\", \"lora_magic\": 1", "unknown field 'lora_magic'")]
    [InlineData("\"r\": 2", "\"r\": 0", "field 'r' is 0; allowed values: whole numbers from 1 to 65536.")]
    public void Bad_configs_name_the_file_and_the_field(string find, string replace, string expected)
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        AdapterFiles.Save(AdapterInjection.Inject(new TinyModel(depth: 1), new LoraConfig(Rank: 2)), temp.Path);
        string config = Path.Combine(temp.Path, AdapterFiles.ConfigFile);
        string text = File.ReadAllText(config);
        Assert.Contains(find, text);
        File.WriteAllText(config, text.Replace(find, replace));
        var error = Assert.Throws<InvalidFileException>(() => AdapterFiles.ReadConfig(config));
        Assert.Contains(config, error.Message);
        Assert.Contains(expected, error.Message);
    }
}
