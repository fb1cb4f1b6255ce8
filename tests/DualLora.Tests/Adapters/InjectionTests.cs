using DualLora.Adapters;
using DualLora.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Adapters;

public class InjectionTests
{
    [Fact]
    public void Targets_are_found_by_name_suffix_and_regex_and_everything_else_is_frozen()
    {
        using var scope = NewDisposeScope();
        var model = new TinyModel();
        var handle = AdapterInjection.Inject(model, new LoraConfig(Rank: 2) { ModulesToSave = ["mm_projector"] });
        Assert.Equal(["layers.0.self_attn.q_proj", "layers.0.self_attn.v_proj", "layers.1.self_attn.q_proj", "layers.1.self_attn.v_proj"],
            handle.Layers.Select(l => l.Path));
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Equal(["mm_projector.weight", "mm_projector.bias",
            "layers.0.self_attn.q_proj.lora_A.weight", "layers.0.self_attn.q_proj.lora_B.weight",
            "layers.0.self_attn.v_proj.lora_A.weight", "layers.0.self_attn.v_proj.lora_B.weight",
            "layers.1.self_attn.q_proj.lora_A.weight", "layers.1.self_attn.q_proj.lora_B.weight",
            "layers.1.self_attn.v_proj.lora_A.weight", "layers.1.self_attn.v_proj.lora_B.weight"], trainable);
        handle.Remove();

        var bySuffix = AdapterInjection.Inject(model, new LoraConfig(Rank: 2) { TargetModules = ["self_attn.k_proj"] });
        Assert.Equal(["layers.0.self_attn.k_proj", "layers.1.self_attn.k_proj"], bySuffix.Layers.Select(l => l.Path));
        bySuffix.Remove();

        var byRegex = AdapterInjection.Inject(model, new LoraConfig(Rank: 2) { TargetRegex = @"layers\.1\.self_attn\.(q|k)_proj" });
        Assert.Equal(["layers.1.self_attn.q_proj", "layers.1.self_attn.k_proj"], byRegex.Layers.Select(l => l.Path));
        byRegex.Remove();
    }

    [Fact]
    public void The_report_uses_PEFTs_words_and_counts()
    {
        using var scope = NewDisposeScope();
        var model = new TinyModel(width: 8, kvWidth: 4, depth: 2);
        long all = model.parameters().Sum(p => p.numel());
        var handle = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 2));
        // Per layer: q (8 -> 8): 2·(2·8 + 8) + 2·2 = 52; v (8 -> 4): 2·(2·8 + 4) + 4 = 44; two layers.
        var count = handle.Count();
        Assert.Equal(2 * (52 + 44), count.Trainable);
        Assert.Equal(all + count.Trainable, count.All);
        Assert.Equal($"trainable params: 192 || all params: {all + 192:N0} || trainable%: {100.0 * 192 / (all + 192):F4}", count.ToString());
        Assert.Equal(count.Trainable, ParameterBudget.Count(handle.Config, ParameterBudget.TargetShapes(model, handle.Config)));
    }

    [Fact]
    public void Disabling_returns_the_base_output_and_removing_restores_the_model()
    {
        using var scope = NewDisposeScope();
        var model = new TinyModel();
        var x = randn(3, 8);
        var baseOutput = model.call(x);
        var keysBefore = model.state_dict().Keys.ToList();
        var gradBefore = model.named_parameters().Select(p => p.parameter.requires_grad).ToList();

        var handle = AdapterInjection.Inject(model, new MoeLoraConfig(Routing.TopK, ExpertRank: 2));
        using (no_grad()) foreach (var (_, p) in handle.AdapterNamedParameters()) p.normal_();
        Assert.False(model.call(x).allclose(baseOutput));
        handle.SetEnabled(false);
        TensorAssert.BitEqual(baseOutput, model.call(x));
        handle.SetEnabled(true);
        handle.Remove();

        TensorAssert.BitEqual(baseOutput, model.call(x));
        Assert.Equal(keysBefore, model.state_dict().Keys.ToList());
        Assert.Equal(gradBefore, model.named_parameters().Select(p => p.parameter.requires_grad).ToList());
        Assert.Throws<InvalidOperationException>(() => handle.SetEnabled(true));
    }

    [Fact]
    public void Bad_targets_are_clear_errors()
    {
        using var scope = NewDisposeScope();
        var model = new TinyModel();
        var none = Assert.Throws<ArgumentException>(() => AdapterInjection.Inject(model, new LoraConfig { TargetModules = ["gate_proj"] }));
        Assert.Contains("[gate_proj] matched no AdaptableLinear", none.Message);
        Assert.Contains("layers.0.self_attn.q_proj", none.Message);
        var plain = Assert.Throws<ArgumentException>(() => AdapterInjection.Inject(model, new LoraConfig { TargetModules = ["o_proj"] }));
        Assert.Contains("'layers.0.self_attn.o_proj' is a Linear, not an AdaptableLinear", plain.Message);
        Assert.Contains("no module named 'vision_tower'", Assert.Throws<ArgumentException>(() =>
            AdapterInjection.Inject(model, new LoraConfig { ModulesToSave = ["vision_tower"] })).Message);
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
    }

    [Fact]
    public void LoRA_merges_and_unmerges_within_float_rounding_and_other_adapters_refuse()
    {
        using var scope = NewDisposeScope();
        var model = new TinyModel();
        var weightsBefore = model.layers[0].self_attn.q_proj.weight.clone();
        var handle = AdapterInjection.Inject(model, new LoraConfig(Rank: 2, Alpha: 4));
        var generator = new Generator(21);
        using (no_grad()) foreach (var (_, p) in handle.AdapterNamedParameters()) p.copy_(randn(p.shape, generator: generator));
        model.eval();
        var x = randn(5, 8, generator: generator);
        var adapted = model.call(x);
        var delta = ((LoraAdapter)model.layers[0].self_attn.q_proj.Adapter!).DeltaWeight();
        // Float32 rounding: W + ΔW − ΔW is W to within an ulp or two of |W| + |ΔW|.
        double weightTolerance = 4 * 1.2e-7 * (weightsBefore.abs() + delta.abs()).max().item<float>();
        double outputTolerance = 1e-5 * adapted.abs().max().item<float>();
        handle.Merge();
        Assert.True(model.layers[0].self_attn.q_proj.IsMerged);
        Assert.True(model.call(x).allclose(adapted, rtol: 0, atol: outputTolerance));
        Assert.False(model.layers[0].self_attn.q_proj.weight.allclose(weightsBefore));
        handle.Unmerge();
        Assert.True(model.layers[0].self_attn.q_proj.weight.allclose(weightsBefore, rtol: 0, atol: weightTolerance),
            $"max difference {(model.layers[0].self_attn.q_proj.weight - weightsBefore).abs().max().item<float>()}, tolerance {weightTolerance}");
        Assert.True(model.call(x).allclose(adapted, rtol: 0, atol: outputTolerance));
        handle.Remove();

        var dual = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 2));
        Assert.Contains("not linear in x", Assert.Throws<InvalidOperationException>(() => dual.Merge()).Message);
    }

    [Fact]
    public void Merge_and_unload_leaves_a_plain_model_computing_the_adapted_output()
    {
        using var scope = NewDisposeScope();
        var model = new TinyModel();
        var keysBefore = model.state_dict().Keys.ToList();
        var handle = AdapterInjection.Inject(model, new LoraConfig(Rank: 2, Alpha: 4));
        var generator = new Generator(8);
        using (no_grad()) foreach (var (_, p) in handle.AdapterNamedParameters()) p.copy_(randn(p.shape, generator: generator) * 0.5);
        model.eval();
        var x = randn(4, 8, generator: generator);
        var adapted = model.call(x);
        handle.MergeAndUnload();
        Assert.Equal(keysBefore, model.state_dict().Keys.ToList());
        Assert.All(model.modules().OfType<AdaptableLinear>(), l => Assert.Null(l.Adapter));
        Assert.True(model.call(x).allclose(adapted, rtol: 0, atol: 1e-5 * adapted.abs().max().item<float>()));
        Assert.Throws<InvalidOperationException>(() => handle.Merge());
    }

    [Fact]
    public void Budgets_match_within_two_percent_at_the_papers_size_and_at_a_small_size()
    {
        // LLaVA-1.5-7B: 32 layers, q and v are 4096 -> 4096; Dual-LoRA r = 32 sets the budget.
        var paper = Enumerable.Range(0, 64).Select(i => ($"layers.{i / 2}.self_attn.{(i % 2 == 0 ? "q" : "v")}_proj", 4096L, 4096L)).ToList();
        var small = Enumerable.Range(0, 8).Select(i => ($"layers.{i / 2}.self_attn.{(i % 2 == 0 ? "q" : "v")}_proj", 64L, i % 2 == 0 ? 64L : 32L)).ToList();
        foreach (var layers in new[] { paper, small })
        {
            long budget = ParameterBudget.Count(new DualLoraConfig(Rank: layers[0].Item2 == 4096 ? 32 : 8), layers);
            foreach (var template in new AdapterConfig[] { new LoraConfig(), new MoeLoraConfig(Routing.TopK), new MoeLoraConfig(Routing.Dense), new DualLoraConfig(UseLayerNorm: false) })
            {
                var matched = ParameterBudget.Match(template, layers, budget);
                long count = ParameterBudget.Count(matched, layers);
                Assert.True(Math.Abs(count - budget) <= 0.02 * budget, $"{matched}: {count} vs {budget}");
            }
        }
        var lora = (LoraConfig)ParameterBudget.Match(new LoraConfig(), paper, ParameterBudget.Count(new DualLoraConfig(Rank: 32), paper));
        Assert.Equal(48, lora.Rank);   // 32·(2·4096 + 4096) + 64 ≈ 48·(4096 + 4096)
        Assert.True(lora.RankPattern.Count <= 1);
        Assert.Throws<ArgumentException>(() => ParameterBudget.Match(new MoeLoraConfig(Routing.Dense, Experts: 4), [("q_proj", 64L, 64L)], 100));
    }

    [Fact]
    public void A_matched_budget_is_what_injection_really_adds()
    {
        using var scope = NewDisposeScope();
        var model = new TinyModel(width: 8, kvWidth: 4, depth: 3);
        var shapes = ParameterBudget.TargetShapes(model, new DualLoraConfig());
        long budget = ParameterBudget.Count(new DualLoraConfig(Rank: 4), shapes);
        foreach (var template in new AdapterConfig[] { new LoraConfig(), new MoeLoraConfig(Routing.Rectified, Experts: 2) })
        {
            var matched = ParameterBudget.Match(template, shapes, budget, tolerance: 0.05);
            var handle = AdapterInjection.Inject(model, matched);
            Assert.Equal(ParameterBudget.Count(matched, shapes), handle.Count().Trainable);
            handle.Remove();
        }
    }
}
