using DualLora.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Language;

/// <summary>
/// Grouped-query self-attention with rotary positions (HF LLaMA): q, k, v, o projections without bias,
/// k and v with fewer heads than q, each k/v head shared by a group of q heads. The projections are
/// <see cref="AdaptableLinear"/>, so adapters can be injected into q_proj and v_proj.
/// </summary>
public sealed class LlamaAttention : nn.Module<Tensor, Tensor>
{
    public readonly AdaptableLinear q_proj, k_proj, v_proj, o_proj;
    readonly LlamaConfig config;

    public LlamaAttention(LlamaConfig config, ScalarType? dtype) : base(nameof(LlamaAttention))
    {
        this.config = config;
        int kvWidth = config.NumKeyValueHeads * config.HeadDim;
        q_proj = new AdaptableLinear(config.HiddenSize, config.HiddenSize, hasBias: false, dtype: dtype);
        k_proj = new AdaptableLinear(config.HiddenSize, kvWidth, hasBias: false, dtype: dtype);
        v_proj = new AdaptableLinear(config.HiddenSize, kvWidth, hasBias: false, dtype: dtype);
        o_proj = new AdaptableLinear(config.HiddenSize, config.HiddenSize, hasBias: false, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => throw new NotSupportedException("Call LlamaAttention.Forward with positions and a mask.");

    /// <param name="x">(batch, length, hidden)</param>
    /// <param name="cos">Rotary cos for these positions, (batch, 1, length, head_dim).</param>
    /// <param name="sin">Rotary sin, likewise.</param>
    /// <param name="mask">(batch, 1, length, total length) booleans: true where a query may attend to a key.</param>
    /// <param name="cache">Keys and values of earlier positions, extended by this call; null for a plain forward pass.</param>
    /// <param name="layerIndex">This layer's slot in the cache.</param>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KeyValueCache? cache, int layerIndex)
    {
        long batch = x.shape[0], length = x.shape[1];
        Tensor Heads(Tensor t, int heads) => t.view(batch, length, heads, config.HeadDim).transpose(1, 2);
        var q = RotaryEmbedding.Apply(Heads(q_proj.call(x), config.NumAttentionHeads), cos, sin);
        var k = RotaryEmbedding.Apply(Heads(k_proj.call(x), config.NumKeyValueHeads), cos, sin);
        var v = Heads(v_proj.call(x), config.NumKeyValueHeads);
        if (cache != null) (k, v) = cache.Append(layerIndex, k, v);

        int group = config.NumAttentionHeads / config.NumKeyValueHeads;
        if (group > 1)
        {
            k = k.repeat_interleave(group, dim: 1);
            v = v.repeat_interleave(group, dim: 1);
        }
        var attended = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask);
        return o_proj.call(attended.transpose(1, 2).reshape(batch, length, config.HiddenSize));
    }
}

/// <summary>The SwiGLU feed-forward block: down(SiLU(gate(x)) ⊙ up(x)).</summary>
public sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    public readonly AdaptableLinear gate_proj, up_proj, down_proj;

    public LlamaMlp(LlamaConfig config, ScalarType? dtype) : base(nameof(LlamaMlp))
    {
        gate_proj = new AdaptableLinear(config.HiddenSize, config.IntermediateSize, hasBias: false, dtype: dtype);
        up_proj = new AdaptableLinear(config.HiddenSize, config.IntermediateSize, hasBias: false, dtype: dtype);
        down_proj = new AdaptableLinear(config.IntermediateSize, config.HiddenSize, hasBias: false, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => down_proj.call(nn.functional.silu(gate_proj.call(x)) * up_proj.call(x));
}

/// <summary>A pre-norm decoder block: x + attention(RMSNorm(x)), then + MLP(RMSNorm(·)).</summary>
public sealed class LlamaDecoderLayer : nn.Module<Tensor, Tensor>
{
    public readonly RmsNorm input_layernorm, post_attention_layernorm;
    public readonly LlamaAttention self_attn;
    public readonly LlamaMlp mlp;

    public LlamaDecoderLayer(LlamaConfig config, ScalarType? dtype) : base(nameof(LlamaDecoderLayer))
    {
        input_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype);
        self_attn = new LlamaAttention(config, dtype);
        post_attention_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype);
        mlp = new LlamaMlp(config, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => throw new NotSupportedException("Call LlamaDecoderLayer.Forward with positions and a mask.");

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KeyValueCache? cache, int layerIndex)
    {
        var h = x + self_attn.Forward(input_layernorm.call(x), cos, sin, mask, cache, layerIndex);
        return h + mlp.call(post_attention_layernorm.call(h));
    }
}

/// <summary>The decoder stack: token embeddings, the layers, the final RMSNorm (HF <c>LlamaModel</c>).</summary>
public sealed class LlamaModel : nn.Module<Tensor, Tensor>
{
    public readonly Embedding embed_tokens;
    public readonly ModuleList<LlamaDecoderLayer> layers;
    public readonly RmsNorm norm;
    public LlamaConfig Config { get; }

    public LlamaModel(LlamaConfig config, ScalarType? dtype = null) : base(nameof(LlamaModel))
    {
        config.Validate();
        Config = config;
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize, dtype: dtype);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(config, dtype)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds) => Forward(embed_tokens.call(inputIds), null, null);

    /// <summary>
    /// Runs the decoder on embeddings (batch, length, hidden). <paramref name="attentionMask"/> (batch, total
    /// length) marks real tokens with 1 and padding with 0 over the cached and the new positions (null: all
    /// real). Positions count real tokens only, so a left-padded sequence gets the positions it would have alone.
    /// With a <paramref name="cache"/> the new tokens attend to the cached ones and are appended to it.
    /// </summary>
    public Tensor Forward(Tensor inputsEmbeds, Tensor? attentionMask, KeyValueCache? cache)
    {
        long batch = inputsEmbeds.shape[0], length = inputsEmbeds.shape[1], past = cache?.Length ?? 0, total = past + length;
        var device = inputsEmbeds.device;
        var real = attentionMask?.to(ScalarType.Bool) ?? ones(batch, total, dtype: ScalarType.Bool, device: device);
        if (real.shape[1] != total)
            throw new ArgumentException($"attention mask covers {real.shape[1]} positions, but {past} are cached and {length} are new.");
        var positions = (real.to(ScalarType.Int64).cumsum(1) - 1).clamp_min(0)[.., (int)past..];
        var (cos, sin) = RotaryEmbedding.For(positions, Config.HeadDim, Config.RopeTheta, inputsEmbeds.dtype);

        // Query i (absolute position past + i) may see key j when j <= past + i and key j is a real token.
        var queryIndex = arange(past, total, device: device).unsqueeze(1);
        var keyIndex = arange(total, device: device).unsqueeze(0);
        var mask = keyIndex.le(queryIndex).unsqueeze(0).unsqueeze(0) & real.unsqueeze(1).unsqueeze(1);   // (batch, 1, length, total)
        // A padded query row may see nothing; let it see itself so softmax stays finite (its output is ignored).
        mask = mask | keyIndex.eq(queryIndex).unsqueeze(0).unsqueeze(0);

        var h = inputsEmbeds;
        for (int i = 0; i < layers.Count; i++) h = layers[i].Forward(h, cos, sin, mask, cache, i);
        return norm.call(h);
    }
}

/// <summary>The decoder with its language-model head (HF <c>LlamaForCausalLM</c>): keys model.* and lm_head.weight.</summary>
public sealed class LlamaForCausalLM : nn.Module<Tensor, Tensor>
{
    public readonly LlamaModel model;
    public readonly Linear lm_head;
    public LlamaConfig Config => model.Config;

    public LlamaForCausalLM(LlamaConfig config, ScalarType? dtype = null) : base(nameof(LlamaForCausalLM))
    {
        model = new LlamaModel(config, dtype);
        lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false, dtype: dtype);
        if (config.TieWordEmbeddings) lm_head.weight = model.embed_tokens.weight!;
        RegisterComponents();
    }

    /// <summary>Logits (batch, length, vocab) for token ids (batch, length).</summary>
    public override Tensor forward(Tensor inputIds) => lm_head.call(model.forward(inputIds));

    public Tensor Logits(Tensor inputsEmbeds, Tensor? attentionMask = null, KeyValueCache? cache = null) =>
        lm_head.call(model.Forward(inputsEmbeds, attentionMask, cache));
}
