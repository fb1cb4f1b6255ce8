using DualLora.Adapters;
using static TorchSharp.torch;

namespace DualLora.Analysis;

/// <summary>
/// Records what every adapted layer reads: a forward pre-hook on each <see cref="AdaptableLinear"/> of an
/// <see cref="AdapterHandle"/> keeps a detached copy of the layer's input x (..., d_in), which is exactly the x its
/// adapter's Delta(x) sees. After a forward pass, <see cref="Inputs"/> maps each layer's path to that copy. The copies
/// belong to the capture, not to a dispose scope (the model's scopes cannot free them): <see cref="Clear"/> frees them
/// before the next pass, <see cref="Dispose"/> also removes the hooks.
/// </summary>
public sealed class AdapterInputCapture : IDisposable
{
    readonly List<nn.Module<Tensor, Tensor>.HookRemover> hooks = [];
    readonly Dictionary<string, Tensor> inputs = [];

    public AdapterInputCapture(AdapterHandle adapters)
    {
        foreach (var (path, layer) in adapters.Layers)
            hooks.Add(layer.register_forward_pre_hook((_, x) =>
            {
                // A layer called twice in one pass keeps its last input.
                if (inputs.Remove(path, out var earlier)) earlier.Dispose();
                inputs[path] = x.detach().clone().DetachFromDisposeScope();
                return x;
            }));
    }

    /// <summary>The input of each layer that ran since the last <see cref="Clear"/>, by the layer's module path.</summary>
    public IReadOnlyDictionary<string, Tensor> Inputs => inputs;

    /// <summary>Frees the captured inputs.</summary>
    public void Clear()
    {
        foreach (var x in inputs.Values) x.Dispose();
        inputs.Clear();
    }

    /// <summary>Removes the hooks (the model runs as before) and frees the captured inputs.</summary>
    public void Dispose()
    {
        foreach (var hook in hooks) hook.remove();
        hooks.Clear();
        Clear();
    }
}
