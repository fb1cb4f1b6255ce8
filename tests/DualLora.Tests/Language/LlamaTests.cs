using DualLora.Language;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Language;

public class LlamaTests
{
    static readonly LlamaConfig Tiny = new(VocabSize: 11, HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1, RopeTheta: 100);

    /// <summary>A float64 model with every weight drawn from a private generator (the RMSNorm gains too).</summary>
    internal static LlamaForCausalLM Model(LlamaConfig config, ulong seed = 3) =>
        Weights.Randomize(new LlamaForCausalLM(config, ScalarType.Float64), seed, 0.5);

    [Fact]
    public void The_state_dict_uses_the_Hugging_Face_LLaMA_key_names()
    {
        using var scope = NewDisposeScope();
        var keys = Model(Tiny).state_dict().Keys.ToList();
        Assert.Contains("model.embed_tokens.weight", keys);
        Assert.Contains("model.norm.weight", keys);
        Assert.Contains("lm_head.weight", keys);
        foreach (string name in new[] { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj" })
            Assert.Contains($"model.layers.1.{name}.weight", keys);
        Assert.Contains("model.layers.0.input_layernorm.weight", keys);
        Assert.Contains("model.layers.0.post_attention_layernorm.weight", keys);
        Assert.Equal(3 + 2 * 9, keys.Count);
    }

    /// <summary>
    /// LLaMA written out step by step, head by head, without the library's helpers: RMSNorm, rotation of the
    /// pairs (i, i + d/2) by angle p·θ^(−2i/d), causal softmax attention with kv head h / group, SwiGLU.
    /// </summary>
    internal static Tensor ReferenceLogits(LlamaForCausalLM lm, long[] ids)
    {
        var c = lm.Config;
        var p = lm.state_dict();
        Tensor W(string name) => p[name];
        Tensor Rms(Tensor x, Tensor g) => x / (x.square().mean([-1], keepdim: true) + c.RmsNormEps).sqrt() * g;
        int n = ids.Length, d = c.HeadDim, half = d / 2;
        Tensor Rotate(Tensor v, int position)          // v: (d)
        {
            var result = v.clone();
            for (int i = 0; i < half; i++)
            {
                double angle = position * Math.Pow(c.RopeTheta, -2.0 * i / d);
                double a = v[i].item<double>(), b = v[i + half].item<double>();
                result[i] = a * Math.Cos(angle) - b * Math.Sin(angle);
                result[i + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
            }
            return result;
        }
        var x = W("model.embed_tokens.weight").index_select(0, tensor(ids));
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string prefix = $"model.layers.{l}.";
            var h = Rms(x, W(prefix + "input_layernorm.weight"));
            var q = h.matmul(W(prefix + "self_attn.q_proj.weight").t());
            var k = h.matmul(W(prefix + "self_attn.k_proj.weight").t());
            var v = h.matmul(W(prefix + "self_attn.v_proj.weight").t());
            var heads = new List<Tensor>();
            for (int head = 0; head < c.NumAttentionHeads; head++)
            {
                int kvHead = head / (c.NumAttentionHeads / c.NumKeyValueHeads);
                var rows = new List<Tensor>();
                for (int i = 0; i < n; i++)
                {
                    var qi = Rotate(q[i, TensorIndex.Slice(head * d, (head + 1) * d)], i);
                    var scores = new double[i + 1];
                    for (int j = 0; j <= i; j++)
                        scores[j] = qi.dot(Rotate(k[j, TensorIndex.Slice(kvHead * d, (kvHead + 1) * d)], j)).item<double>() / Math.Sqrt(d);
                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    var row = zeros(d, dtype: ScalarType.Float64);
                    for (int j = 0; j <= i; j++) row += Math.Exp(scores[j] - max) / sum * v[j, TensorIndex.Slice(kvHead * d, (kvHead + 1) * d)];
                    rows.Add(row);
                }
                heads.Add(stack(rows));
            }
            x = x + cat(heads, 1).matmul(W(prefix + "self_attn.o_proj.weight").t());
            var m = Rms(x, W(prefix + "post_attention_layernorm.weight"));
            var gate = m.matmul(W(prefix + "mlp.gate_proj.weight").t());
            x = x + (gate * gate.sigmoid() * m.matmul(W(prefix + "mlp.up_proj.weight").t())).matmul(W(prefix + "mlp.down_proj.weight").t());
        }
        return Rms(x, W("model.norm.weight")).matmul(W("lm_head.weight").t());
    }

    [Fact]
    public void The_forward_pass_matches_a_step_by_step_reference()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        long[] ids = [3, 7, 1, 0, 9, 4];
        var logits = model.call(tensor(ids).unsqueeze(0))[0];
        var reference = ReferenceLogits(model, ids);
        Assert.True(logits.allclose(reference, rtol: 1e-10, atol: 1e-10), $"max difference {(logits - reference).abs().max().item<double>()}");
    }

    [Fact]
    public void Cached_incremental_logits_equal_the_full_forward_pass()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny with { NumKeyValueHeads = 2 });
        var ids = tensor(new long[] { 2, 5, 8, 1, 1, 6, 10 }).unsqueeze(0);
        var full = model.call(ids);
        using var cache = new KeyValueCache(Tiny.NumHiddenLayers);
        var embeds = model.model.embed_tokens.call(ids);
        var first = model.Logits(embeds[.., ..3], ones(1, 3, dtype: ScalarType.Int64), cache);
        Assert.True(first.allclose(full[.., ..3], rtol: 1e-10, atol: 1e-10));
        for (int i = 3; i < 7; i++)
        {
            var step = model.Logits(embeds[.., i..(i + 1)], ones(1, i + 1, dtype: ScalarType.Int64), cache);
            Assert.True(step[0, 0].allclose(full[0, i], rtol: 1e-10, atol: 1e-10), $"position {i}");
        }
        Assert.Equal(7, cache.Length);
    }

    [Fact]
    public void Greedy_generation_with_the_cache_equals_recomputing_everything()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        var prompt = tensor(new long[] { 4, 2, 9 }).unsqueeze(0);
        var generated = TextGeneration.Generate(model, model.model.embed_tokens.call(prompt), null, maxNewTokens: 6);

        var sequence = prompt.data<long>().ToList();
        for (int i = 0; i < 6; i++)
            sequence.Add(model.call(tensor(sequence.ToArray()).unsqueeze(0))[0, -1].argmax().item<long>());
        Assert.Equal(sequence.Skip(3).ToArray(), generated[0].data<long>().ToArray());
    }

    [Fact]
    public void Left_padded_batches_give_each_sequence_its_own_logits()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        long[] shortIds = [5, 1], longIds = [7, 3, 8, 2];
        var batch = tensor(new long[] { 0, 0, 5, 1, 7, 3, 8, 2 }).reshape(2, 4);
        var mask = tensor(new long[] { 0, 0, 1, 1, 1, 1, 1, 1 }).reshape(2, 4);
        var logits = model.Logits(model.model.embed_tokens.call(batch), mask);
        var alone = model.call(tensor(shortIds).unsqueeze(0))[0];
        Assert.True(logits[0, 2..].allclose(alone, rtol: 1e-10, atol: 1e-10));
        Assert.True(logits[1].allclose(model.call(tensor(longIds).unsqueeze(0))[0], rtol: 1e-10, atol: 1e-10));

        var generated = TextGeneration.Generate(model, model.model.embed_tokens.call(batch), mask, maxNewTokens: 4);
        var single = TextGeneration.Generate(model, model.model.embed_tokens.call(tensor(shortIds).unsqueeze(0)), null, maxNewTokens: 4);
        Assert.Equal(single[0].data<long>().ToArray(), generated[0].data<long>().ToArray());
    }

    [Fact]
    public void Sampling_is_reproducible_and_top_1_is_greedy()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny);
        var embeds = model.model.embed_tokens.call(tensor(new long[] { 1, 2, 3 }).unsqueeze(0));
        var a = TextGeneration.Generate(model, embeds, null, 8, temperature: 1.5, generator: new Generator(9));
        var b = TextGeneration.Generate(model, embeds, null, 8, temperature: 1.5, generator: new Generator(9));
        Assert.Equal(a.data<long>().ToArray(), b.data<long>().ToArray());
        var greedy = TextGeneration.Generate(model, embeds, null, 8);
        var topOne = TextGeneration.Generate(model, embeds, null, 8, temperature: 0.7, topK: 1, generator: new Generator(1));
        Assert.Equal(greedy.data<long>().ToArray(), topOne.data<long>().ToArray());
    }

    [Fact]
    public void Generation_leaves_no_tensor_behind_but_its_result()
    {
        using var model = Model(Tiny);
        using var prompt = tensor(new long[] { 1, 2, 3 }).unsqueeze(0);
        using var embeds = model.model.embed_tokens.call(prompt);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var generated = TextGeneration.Generate(model, embeds, null, maxNewTokens: 10, endOfSequence: 4)) { }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void Bad_configs_are_rejected_naming_the_field()
    {
        Assert.Contains("num_key_value_heads", Assert.Throws<ArgumentException>(() => new LlamaModel(Tiny with { NumKeyValueHeads = 3 })).Message);
        Assert.Contains("hidden_size", Assert.Throws<ArgumentException>(() => new LlamaModel(Tiny with { HiddenSize = 9 })).Message);
    }
}
