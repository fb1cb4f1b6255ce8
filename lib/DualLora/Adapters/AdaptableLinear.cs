using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// A linear layer y = W x + b that an adapter can be attached to: the swap point of adapter injection.
/// TorchSharp modules call their submodules through C# fields, so replacing a module in the tree (as
/// HF PEFT does) would not change what runs; instead the model's adaptable projections are of this type,
/// and injection attaches an adapter to them. The adapter's submodules are registered on this layer, so
/// their keys sit where PEFT puts them (<c>q_proj.lora_A.weight</c>) while the base keeps the keys of a
/// plain linear layer (<c>q_proj.weight</c>, <c>q_proj.bias</c>).
/// </summary>
public sealed class AdaptableLinear : nn.Module<Tensor, Tensor>
{
    static readonly double Sqrt5 = Math.Sqrt(5);

    public Parameter weight;
    public Parameter? bias;

    Adapter? adapter;
    bool merged;

    public long InFeatures { get; }
    public long OutFeatures { get; }
    public Adapter? Adapter => adapter;
    /// <summary>False runs the base layer alone (the adapter stays attached).</summary>
    public bool AdapterEnabled { get; set; } = true;
    public bool IsMerged => merged;

    /// <summary>Initialised as nn.Linear is: weight kaiming-uniform (a = √5), bias U(±1/√in).</summary>
    public AdaptableLinear(long inFeatures, long outFeatures, bool hasBias = true, Device? device = null, ScalarType? dtype = null)
        : base(nameof(AdaptableLinear))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        weight = new Parameter(empty(outFeatures, inFeatures, dtype: dtype, device: device));
        nn.init.kaiming_uniform_(weight, a: Sqrt5);
        if (hasBias)
        {
            bias = new Parameter(empty(outFeatures, dtype: dtype, device: device));
            double bound = 1 / Math.Sqrt(inFeatures);
            nn.init.uniform_(bias, -bound, bound);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var output = nn.functional.linear(input, weight, bias);
        if (adapter == null || !AdapterEnabled || merged) return output;
        return output + adapter.Delta(input, training);
    }

    internal void Attach(Adapter newAdapter)
    {
        if (adapter != null) throw new InvalidOperationException("An adapter is already attached to this layer; remove it first.");
        foreach (var (name, module) in newAdapter.named_children()) register_module(name, module);
        adapter = newAdapter;
        AdapterEnabled = true;
    }

    /// <param name="keepMerged">Leave a merged update in W (PEFT's merge_and_unload) instead of taking it out.</param>
    internal Adapter Detach(bool keepMerged = false)
    {
        var removed = adapter ?? throw new InvalidOperationException("No adapter is attached to this layer.");
        if (merged && !keepMerged) Unmerge();
        merged = false;
        foreach (var (name, _) in removed.named_children()) register_module(name, null!);
        adapter = null;
        return removed;
    }

    /// <summary>Adds the adapter's weight update to W, so inference runs at the base layer's cost.</summary>
    internal void Merge()
    {
        if (merged) return;
        var mergeable = adapter as IMergeableAdapter
            ?? throw new InvalidOperationException($"{adapter?.GetType().Name ?? "no adapter"} cannot be merged into the base weight: {adapter?.WhyNotMergeable ?? "nothing is attached"}.");
        using var _ = no_grad();
        using var delta = mergeable.DeltaWeight();
        weight.add_(delta);
        merged = true;
    }

    /// <summary>Subtracts the update again: W is restored within float rounding.</summary>
    internal void Unmerge()
    {
        if (!merged) return;
        using var _ = no_grad();
        using var delta = ((IMergeableAdapter)adapter!).DeltaWeight();
        weight.sub_(delta);
        merged = false;
    }
}
