using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Vision;

/// <summary>
/// The fields of a Hugging Face <c>CLIPVisionConfig</c> (HF names in the comments). The defaults are the
/// project's small CPU encoder: 56 x 56 grey images in 7 x 7 patches (an 8 x 8 grid), 8 layers, deep
/// enough for four distinct VCE levels.
/// </summary>
public sealed record ClipVisionConfig(
    int HiddenSize = 96,            // hidden_size
    int IntermediateSize = 384,     // intermediate_size
    int NumHiddenLayers = 8,        // num_hidden_layers
    int NumAttentionHeads = 4,      // num_attention_heads
    int ImageSize = 56,             // image_size
    int PatchSize = 7,              // patch_size
    int NumChannels = 1,            // num_channels
    double LayerNormEps = 1e-5,     // layer_norm_eps
    string HiddenAct = "quick_gelu") // hidden_act: quick_gelu (CLIP) or gelu
{
    public int GridSize => ImageSize / PatchSize;
    public int NumPatches => GridSize * GridSize;

    /// <summary>
    /// The parameters of the vision tower with these sizes, counted from the config alone: patch embedding (no bias),
    /// class token, positions, the two outer LayerNorms, and per layer four biased attention projections, a biased
    /// two-layer MLP and two LayerNorms.
    /// </summary>
    public long ParameterCount()
    {
        long hidden = HiddenSize;
        long layer = 4 * (hidden * hidden + hidden) + 2 * hidden * IntermediateSize + IntermediateSize + hidden + 4 * hidden;
        return (long)NumChannels * PatchSize * PatchSize * hidden + hidden + (NumPatches + 1L) * hidden + 4 * hidden + NumHiddenLayers * layer;
    }

    public void Validate()
    {
        void Require(bool condition, string field, string fault)
        {
            if (!condition) throw new ArgumentException($"{field}: {fault}");
        }
        Require(ImageSize % PatchSize == 0, "image_size", $"{ImageSize} is not a multiple of patch_size {PatchSize}.");
        Require(HiddenSize % NumAttentionHeads == 0, "hidden_size", $"{HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}.");
        Require(HiddenAct is "quick_gelu" or "gelu", "hidden_act", $"\"{HiddenAct}\" is not supported; use \"quick_gelu\" or \"gelu\".");
        Require(NumHiddenLayers > 0 && NumChannels > 0, "config", "sizes must be positive.");
    }
}

/// <summary>Patch embedding (a strided convolution without bias), a learned class token and learned positions.</summary>
public sealed class ClipVisionEmbeddings : nn.Module<Tensor, Tensor>
{
    public readonly Parameter class_embedding;
    public readonly Conv2d patch_embedding;
    public readonly Embedding position_embedding;

    public ClipVisionEmbeddings(ClipVisionConfig config, ScalarType? dtype) : base(nameof(ClipVisionEmbeddings))
    {
        class_embedding = new Parameter(randn(config.HiddenSize, dtype: dtype) * 0.02);
        patch_embedding = nn.Conv2d(config.NumChannels, config.HiddenSize, config.PatchSize, stride: config.PatchSize, bias: false, dtype: dtype);
        position_embedding = nn.Embedding(config.NumPatches + 1, config.HiddenSize, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>(batch, channels, H, W) images → (batch, 1 + patches, hidden): the class token, then the patches row by row.</summary>
    public override Tensor forward(Tensor pixels)
    {
        var patches = patch_embedding.call(pixels).flatten(2).transpose(1, 2);
        var cls = class_embedding.expand(patches.shape[0], 1, -1);
        var tokens = cat([cls, patches], 1);
        return tokens + position_embedding.weight!.unsqueeze(0);
    }
}

/// <summary>Multi-head self-attention with biased projections, named as in CLIP (q_proj, k_proj, v_proj, out_proj).</summary>
public sealed class ClipAttention : nn.Module<Tensor, Tensor>
{
    public readonly Linear q_proj, k_proj, v_proj, out_proj;
    readonly int heads;

    public ClipAttention(ClipVisionConfig config, ScalarType? dtype) : base(nameof(ClipAttention))
    {
        heads = config.NumAttentionHeads;
        q_proj = nn.Linear(config.HiddenSize, config.HiddenSize, dtype: dtype);
        k_proj = nn.Linear(config.HiddenSize, config.HiddenSize, dtype: dtype);
        v_proj = nn.Linear(config.HiddenSize, config.HiddenSize, dtype: dtype);
        out_proj = nn.Linear(config.HiddenSize, config.HiddenSize, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long batch = x.shape[0], length = x.shape[1], width = x.shape[2];
        Tensor Heads(Tensor t) => t.view(batch, length, heads, width / heads).transpose(1, 2);
        var attended = nn.functional.scaled_dot_product_attention(Heads(q_proj.call(x)), Heads(k_proj.call(x)), Heads(v_proj.call(x)));
        return out_proj.call(attended.transpose(1, 2).reshape(batch, length, width));
    }
}

/// <summary>fc1, the activation, fc2.</summary>
public sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
    public readonly Linear fc1, fc2;
    readonly bool quickGelu;
    static readonly Scalar QuickGeluFactor = 1.702.ToScalar();   // held, so the GC cannot finalize it while LibTorch reads it

    public ClipMlp(ClipVisionConfig config, ScalarType? dtype) : base(nameof(ClipMlp))
    {
        fc1 = nn.Linear(config.HiddenSize, config.IntermediateSize, dtype: dtype);
        fc2 = nn.Linear(config.IntermediateSize, config.HiddenSize, dtype: dtype);
        quickGelu = config.HiddenAct == "quick_gelu";
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = fc1.call(x);
        // CLIP's quick GELU: x · σ(1.702 x).
        h = quickGelu ? h * nn.functional.sigmoid(h.mul(QuickGeluFactor)) : nn.functional.gelu(h);
        return fc2.call(h);
    }
}

/// <summary>A pre-norm transformer block: x + attention(LN(x)), then + MLP(LN(·)).</summary>
public sealed class ClipEncoderLayer : nn.Module<Tensor, Tensor>
{
    public readonly LayerNorm layer_norm1, layer_norm2;
    public readonly ClipAttention self_attn;
    public readonly ClipMlp mlp;

    public ClipEncoderLayer(ClipVisionConfig config, ScalarType? dtype) : base(nameof(ClipEncoderLayer))
    {
        layer_norm1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: dtype);
        self_attn = new ClipAttention(config, dtype);
        layer_norm2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: dtype);
        mlp = new ClipMlp(config, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = x + self_attn.call(layer_norm1.call(x));
        return h + mlp.call(layer_norm2.call(h));
    }
}

public sealed class ClipEncoder : nn.Module<Tensor, Tensor>
{
    public readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(ClipVisionConfig config, ScalarType? dtype) : base(nameof(ClipEncoder))
    {
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new ClipEncoderLayer(config, dtype)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var layer in layers) x = layer.call(x);
        return x;
    }
}

/// <summary>The encoder's outputs: every hidden state (index 0 the embeddings, index i the output of layer i).</summary>
public sealed record VisionOutput(IReadOnlyList<Tensor> HiddenStates)
{
    /// <summary>
    /// Patch features as LLaVA selects them: hidden state <paramref name="layer"/> (negative counts from the
    /// end, −1 the last layer, −2 LLaVA's default), without the class token: (batch, patches, hidden).
    /// </summary>
    public Tensor PatchFeatures(int layer = -2)
    {
        int index = layer < 0 ? HiddenStates.Count + layer : layer;
        if (index < 0 || index >= HiddenStates.Count)
            throw new ArgumentOutOfRangeException(nameof(layer), $"layer {layer}: the encoder has {HiddenStates.Count} hidden states (embeddings and {HiddenStates.Count - 1} layers).");
        return HiddenStates[index][.., 1..];
    }
}

/// <summary>
/// The CLIP vision tower in HF's <c>CLIPVisionModel</c> layout (keys <c>vision_model.embeddings...</c>,
/// <c>vision_model.pre_layrnorm</c> (sic), <c>vision_model.encoder.layers.N...</c>, <c>vision_model.post_layernorm</c>),
/// returning every hidden state, as <c>output_hidden_states=True</c> does.
/// </summary>
public sealed class ClipVisionModel : nn.Module<Tensor, Tensor>
{
    public readonly ClipVisionTransformer vision_model;
    public ClipVisionConfig Config { get; }

    public ClipVisionModel(ClipVisionConfig config, ScalarType? dtype = null) : base(nameof(ClipVisionModel))
    {
        config.Validate();
        Config = config;
        vision_model = new ClipVisionTransformer(config, dtype);
        RegisterComponents();
    }

    /// <summary>The last hidden state (batch, 1 + patches, hidden).</summary>
    public override Tensor forward(Tensor pixels) => Encode(pixels).HiddenStates[^1];

    public VisionOutput Encode(Tensor pixels) => vision_model.Encode(pixels);
}

public sealed class ClipVisionTransformer : nn.Module<Tensor, Tensor>
{
    public readonly ClipVisionEmbeddings embeddings;
    public readonly LayerNorm pre_layrnorm, post_layernorm;
    public readonly ClipEncoder encoder;

    public ClipVisionTransformer(ClipVisionConfig config, ScalarType? dtype) : base(nameof(ClipVisionTransformer))
    {
        embeddings = new ClipVisionEmbeddings(config, dtype);
        pre_layrnorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: dtype);
        encoder = new ClipEncoder(config, dtype);
        post_layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels) => Encode(pixels).HiddenStates[^1];

    public VisionOutput Encode(Tensor pixels)
    {
        var states = new List<Tensor> { pre_layrnorm.call(embeddings.call(pixels)) };
        foreach (var layer in encoder.layers) states.Add(layer.call(states[^1]));
        return new VisionOutput(states);
    }
}
