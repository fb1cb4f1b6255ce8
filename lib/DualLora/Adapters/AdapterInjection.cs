using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// PEFT's injection step: find the target layers by name, attach an adapter to each, freeze everything
/// else except the modules named as trainable, and return a handle that can disable, merge or remove the
/// adapters and restore the model as it was.
/// </summary>
public static class AdapterInjection
{
    public static AdapterHandle Inject(nn.Module model, AdapterConfig config)
    {
        config = config.WithTargetsFor(model);
        config.Validate();
        return Inject(model, config, FindTargets(model, config));
    }

    /// <summary>Injection into targets already found by <see cref="FindTargets"/> for this (resolved and validated) config.</summary>
    internal static AdapterHandle Inject(nn.Module model, AdapterConfig config, List<(string Path, AdaptableLinear Layer)> targets)
    {
        var trainable = FindModulesToSave(model, config);

        // Remember every parameter's requires_grad, so removing the adapters restores the model exactly.
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        var attached = new List<(string, AdaptableLinear)>();
        try
        {
            foreach (var (path, layer) in targets)
            {
                if (layer.Adapter != null) throw new InvalidOperationException($"'{path}' already has an adapter; remove it first.");
                layer.Attach(config.ForLayer(path).Create(layer.InFeatures, layer.OutFeatures, layer.weight.device, layer.weight.dtype));
                attached.Add((path, layer));
            }
        }
        catch
        {
            foreach (var (_, layer) in attached) layer.Detach();
            throw;
        }

        var adapterParameters = new HashSet<string>(attached.SelectMany(t => t.Item2.Adapter!.named_children()
            .SelectMany(c => c.module.named_parameters().Select(p => $"{t.Item1}.{c.name}.{p.name}"))));
        foreach (var (name, parameter) in model.named_parameters())
        {
            bool train = adapterParameters.Contains(name) || trainable.Any(m => name.StartsWith(m + ".", StringComparison.Ordinal));
            parameter.requires_grad = train;
        }
        return new AdapterHandle(model, config, attached, trainable, before);
    }

    /// <summary>Every <see cref="AdaptableLinear"/> whose path the config targets; an error if there is none.</summary>
    public static List<(string Path, AdaptableLinear Layer)> FindTargets(nn.Module model, AdapterConfig config)
    {
        config = config.WithTargetsFor(model);
        var names = config.TargetModules ?? [];
        var regex = config.TargetRegex is null ? null : new Regex($"^(?:{config.TargetRegex})$");
        bool Targeted(string path) => regex?.IsMatch(path)
            ?? names.Any(t => path == t || path.EndsWith("." + t, StringComparison.Ordinal));

        var targets = new List<(string, AdaptableLinear)>();
        foreach (var (path, module) in model.named_modules())
        {
            if (path.Length == 0 || !Targeted(path)) continue;
            if (module is AdaptableLinear layer) targets.Add((path, layer));
            else if (regex is null && names.Contains(path.Split('.')[^1]))
                throw new ArgumentException($"target '{path}' is a {module.GetType().Name}, not an AdaptableLinear: only AdaptableLinear layers can carry adapters.");
        }
        if (targets.Count == 0)
        {
            var available = model.named_modules().Where(m => m.module is AdaptableLinear).Select(m => m.name).ToList();
            string wanted = config.TargetRegex is null ? $"target_modules [{string.Join(", ", names)}]" : $"target regex '{config.TargetRegex}'";
            throw new ArgumentException($"{wanted} matched no AdaptableLinear layer; the model has: {(available.Count == 0 ? "none" : string.Join(", ", available))}.");
        }
        return targets;
    }

    static List<string> FindModulesToSave(nn.Module model, AdapterConfig config)
    {
        var paths = model.named_modules().Select(m => m.name).Where(n => n.Length > 0).ToList();
        var found = new List<string>();
        foreach (string name in config.ModulesToSave)
        {
            var matches = paths.Where(p => p == name || p.EndsWith("." + name, StringComparison.Ordinal)).ToList();
            if (matches.Count == 0) throw new ArgumentException($"modules_to_save: no module named '{name}' in the model.");
            found.AddRange(matches);
        }
        return found;
    }
}
