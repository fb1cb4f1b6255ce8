using DualLora.Adapters;
using static TorchSharp.torch;

namespace DualLora.Training;

/// <summary>Parameters whose names in the model <paramref name="Selects"/> accepts train together at one learning rate.</summary>
public sealed record GroupRule(string Name, Func<string, bool> Selects, double LearningRate, double WeightDecay = 0);

/// <summary>
/// What one stage of training trains, and how fast: the one owner of <c>requires_grad</c> while it runs.
/// <see cref="Apply"/> sets every parameter of the model: trainable exactly when a group selects it.
/// METHOD.md §4: stage 1 trains the connector (VCE + projector) at 1e-3; stage 2 the adapters at 2e-4
/// together with the connector at 2e-5; the vision tower and the decoder's base weights stay frozen.
/// </summary>
public sealed record TrainingStage(string Name, IReadOnlyList<GroupRule> Groups)
{
    const string Connector = "connector.";

    /// <summary>Stage 1: the connector (VCE and the projector) alone.</summary>
    public static TrainingStage ConnectorOnly(double learningRate = 1e-3, double weightDecay = 0) =>
        new("stage1", [new GroupRule("connector", n => n.StartsWith(Connector, StringComparison.Ordinal), learningRate, weightDecay)]);

    /// <summary>Stage 2: the adapters and the connector, each group at its own learning rate.</summary>
    public static TrainingStage AdaptersAndConnector(AdapterHandle adapters, double adapterLearningRate = 2e-4, double connectorLearningRate = 2e-5, double weightDecay = 0)
    {
        var names = AdapterNames(adapters);
        return new("stage2", [
            new GroupRule("adapters", names.Contains, adapterLearningRate, weightDecay),
            new GroupRule("connector", n => n.StartsWith(Connector, StringComparison.Ordinal), connectorLearningRate, weightDecay)]);
    }

    /// <summary>The adapters alone (a model without a connector, or a frozen one).</summary>
    public static TrainingStage AdaptersOnly(AdapterHandle adapters, double learningRate, double weightDecay = 0, string name = "adapters")
    {
        var names = AdapterNames(adapters);
        return new(name, [new GroupRule("adapters", names.Contains, learningRate, weightDecay)]);
    }

    /// <summary>Every parameter of the model (pretraining the small base).</summary>
    public static TrainingStage Everything(double learningRate, double weightDecay = 0, string name = "pretrain") =>
        new(name, [new GroupRule("all", _ => true, learningRate, weightDecay)]);

    /// <summary>
    /// Sets <c>requires_grad</c> on every parameter of <paramref name="model"/> (true exactly for the selected
    /// ones) and returns the groups for the optimizer. A group that selects nothing, or a parameter that two
    /// groups select, is an error.
    /// </summary>
    public IReadOnlyList<ParameterGroup> Apply(nn.Module model)
    {
        var members = Groups.ToDictionary(g => g.Name, _ => new List<(string, TorchSharp.Modules.Parameter)>());
        foreach (var (name, parameter) in model.named_parameters())
        {
            var selecting = Groups.Where(g => g.Selects(name)).ToList();
            if (selecting.Count > 1)
                throw new ArgumentException($"stage '{Name}': parameter '{name}' is selected by groups {string.Join(" and ", selecting.Select(g => $"'{g.Name}'"))}.");
            parameter.requires_grad = selecting.Count == 1;
            if (selecting.Count == 1) members[selecting[0].Name].Add((name, parameter));
        }
        var empty = Groups.Where(g => members[g.Name].Count == 0).Select(g => g.Name).ToList();
        if (empty.Count > 0)
            throw new ArgumentException($"stage '{Name}': group(s) {string.Join(", ", empty.Select(n => $"'{n}'"))} select no parameter of the model.");
        return Groups.Select(g => new ParameterGroup(g.Name, members[g.Name], g.LearningRate, g.WeightDecay)).ToList();
    }

    static HashSet<string> AdapterNames(AdapterHandle adapters) => adapters.AdapterNamedParameters().Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
}
