using DualLora.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Tests.Adapters;

/// <summary>An attention-shaped toy: layers.N.self_attn.{q,k,v}_proj are adaptable, o_proj and mm_projector are plain.</summary>
sealed class TinyAttention : nn.Module<Tensor, Tensor>
{
    public readonly AdaptableLinear q_proj, k_proj, v_proj;
    public readonly Linear o_proj;

    public TinyAttention(long width, long kvWidth, ScalarType dtype) : base(nameof(TinyAttention))
    {
        q_proj = new AdaptableLinear(width, width, dtype: dtype);
        k_proj = new AdaptableLinear(width, width, dtype: dtype);
        v_proj = new AdaptableLinear(width, kvWidth, hasBias: false, dtype: dtype);
        o_proj = nn.Linear(kvWidth, width, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        o_proj.call(v_proj.call(x) * nn.functional.sigmoid((q_proj.call(x) * k_proj.call(x)).sum(-1, keepdim: true)));
}

sealed class TinyLayer : nn.Module<Tensor, Tensor>
{
    public readonly TinyAttention self_attn;
    public TinyLayer(long width, long kvWidth, ScalarType dtype) : base(nameof(TinyLayer))
    {
        self_attn = new TinyAttention(width, kvWidth, dtype);
        RegisterComponents();
    }
    public override Tensor forward(Tensor x) => x + self_attn.call(x);
}

sealed class TinyModel : nn.Module<Tensor, Tensor>
{
    public readonly Linear mm_projector;
    public readonly ModuleList<TinyLayer> layers;

    public TinyModel(long width = 8, long kvWidth = 4, int depth = 2, ScalarType dtype = ScalarType.Float32, long seed = 1) : base(nameof(TinyModel))
    {
        mm_projector = nn.Linear(width, width, dtype: dtype);
        layers = nn.ModuleList(Enumerable.Range(0, depth).Select(_ => new TinyLayer(width, kvWidth, dtype)).ToArray());
        RegisterComponents();
        Weights.Randomize(this, (ulong)seed, 0.3);
    }

    public override Tensor forward(Tensor x)
    {
        var h = mm_projector.call(x);
        foreach (var layer in layers) h = layer.call(h);
        return h;
    }
}
