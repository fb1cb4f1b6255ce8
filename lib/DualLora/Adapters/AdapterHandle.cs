using System.Globalization;
using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>Parameter counts in HF PEFT's words.</summary>
public sealed record TrainableParameters(long Trainable, long All)
{
    public double Percent => All == 0 ? 0 : 100.0 * Trainable / All;
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"trainable params: {Trainable:N0} || all params: {All:N0} || trainable%: {Percent:F4}");
}

/// <summary>
/// The adapters injected into a model: switch them off and on, merge them into the base weights (LoRA),
/// remove them (restoring the model as it was, requires_grad included), count parameters, and collect
/// the auxiliary losses of the last forward pass.
/// </summary>
public sealed class AdapterHandle
{
    readonly nn.Module model;
    readonly Dictionary<string, bool> requiresGradBefore;
    bool removed;

    public AdapterConfig Config { get; }
    public IReadOnlyList<(string Path, AdaptableLinear Layer)> Layers { get; }
    /// <summary>Paths of the modules that train alongside the adapters (modules_to_save).</summary>
    public IReadOnlyList<string> TrainableModules { get; }

    internal AdapterHandle(nn.Module model, AdapterConfig config, List<(string, AdaptableLinear)> layers, List<string> trainableModules, Dictionary<string, bool> requiresGradBefore)
    {
        this.model = model; Config = config; Layers = layers; TrainableModules = trainableModules; this.requiresGradBefore = requiresGradBefore;
    }

    public nn.Module Model => model;

    /// <summary>The parameters an optimiser should update: the adapters' and those of the trainable modules.</summary>
    public IEnumerable<(string Name, TorchSharp.Modules.Parameter Parameter)> TrainableNamedParameters() =>
        model.named_parameters().Where(p => p.parameter.requires_grad);

    /// <summary>Just the adapters' parameters, under their module paths (<c>...q_proj.lora_A.weight</c>).</summary>
    public IEnumerable<(string Name, TorchSharp.Modules.Parameter Parameter)> AdapterNamedParameters() =>
        Layers.SelectMany(l => l.Layer.Adapter!.named_children()
            .SelectMany(c => c.module.named_parameters().Select(p => ($"{l.Path}.{c.name}.{p.name}", p.parameter))));

    public TrainableParameters Count()
    {
        var all = model.parameters().ToList();
        return new TrainableParameters(all.Where(p => p.requires_grad).Sum(p => p.numel()), all.Sum(p => p.numel()));
    }

    public void SetEnabled(bool enabled)
    {
        ThrowIfRemoved();
        foreach (var (_, layer) in Layers) layer.AdapterEnabled = enabled;
    }

    /// <summary>Folds every adapter into its base weight (LoRA only); forward then costs what the base model costs.</summary>
    public void Merge()
    {
        ThrowIfRemoved();
        foreach (var (_, layer) in Layers) layer.Merge();
    }

    public void Unmerge()
    {
        ThrowIfRemoved();
        foreach (var (_, layer) in Layers) layer.Unmerge();
    }

    /// <summary>The sum of the auxiliary losses of the last training forward pass, or null if none is on.</summary>
    public Tensor? AuxiliaryLoss()
    {
        var losses = Layers.Select(l => l.Layer.Adapter?.AuxiliaryLoss).OfType<Tensor>().ToList();
        return losses.Count == 0 ? null : stack(losses).sum();
    }

    /// <summary>Detaches every adapter (unmerging first) and restores requires_grad as it was before injection.</summary>
    public void Remove() => Unload(keepMerged: false);

    /// <summary>
    /// Folds every adapter into its base weight and detaches it (PEFT's merge_and_unload): the model is a
    /// plain model again, with the adapted weights. LoRA only.
    /// </summary>
    public void MergeAndUnload()
    {
        Merge();
        Unload(keepMerged: true);
    }

    void Unload(bool keepMerged)
    {
        ThrowIfRemoved();
        foreach (var (_, layer) in Layers) layer.Detach(keepMerged).Dispose();
        foreach (var (name, parameter) in model.named_parameters())
            if (requiresGradBefore.TryGetValue(name, out bool before)) parameter.requires_grad = before;
        removed = true;
    }

    void ThrowIfRemoved()
    {
        if (removed) throw new InvalidOperationException("These adapters have been removed.");
    }
}
