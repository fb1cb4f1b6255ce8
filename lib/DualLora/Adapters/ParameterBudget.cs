using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// Trainable-parameter budgets, so that methods are compared at equal cost (METHOD.md §2): counts what an
/// adapter config adds to a set of layers, and chooses the rank that brings a method to a given budget.
/// </summary>
public static class ParameterBudget
{
    /// <summary>Path, d_in and d_out of every layer the config would adapt in <paramref name="model"/>.</summary>
    public static IReadOnlyList<(string Path, long In, long Out)> TargetShapes(nn.Module model, AdapterConfig config) =>
        AdapterInjection.FindTargets(model, config).Select(t => (t.Path, t.Layer.InFeatures, t.Layer.OutFeatures)).ToList();

    public static long Count(AdapterConfig config, IEnumerable<(string Path, long In, long Out)> layers) =>
        layers.Sum(l => config.ForLayer(l.Path).ParameterCount(l.In, l.Out));

    /// <summary>
    /// The config with its ranks chosen so its parameter count is closest to <paramref name="budget"/>.
    /// Ranks move in steps: for LoRA and Dual-LoRA a step is one rank on every layer, for a LoRA-MoE
    /// one rank on every layer for each expert; at small sizes such steps are too coarse to land within
    /// 2%, so the search runs over the total rank and spreads it as evenly as it goes: the first layers
    /// (by path) get one rank more through a rank pattern, and a mixture's first experts one rank more.
    /// Throws if the closest count is further than <paramref name="tolerance"/> from the budget.
    /// </summary>
    public static AdapterConfig Match(AdapterConfig template, IReadOnlyList<(string Path, long In, long Out)> layers, long budget, double tolerance = 0.02)
    {
        // total: the sum over layers of each layer's rank (for a mixture, of its experts' ranks).
        IReadOnlyDictionary<string, int> Pattern(int total) => layers.Take(total % layers.Count).ToDictionary(l => l.Path, _ => total / layers.Count + 1);
        Func<int, AdapterConfig> withTotal = template switch
        {
            LoraConfig lora => total => lora with { Rank = total / layers.Count, RankPattern = Pattern(total) },
            DualLoraConfig dual => total => dual with { Rank = total / layers.Count, RankPattern = Pattern(total) },
            MoeLoraConfig moe => total => moe.WithTotalRank(total / layers.Count) with { RankPattern = Pattern(total) },
            _ => throw new ArgumentException($"no budget rule for {template.GetType().Name}"),
        };
        int smallest = layers.Count * (template is MoeLoraConfig m ? m.Experts : 1);
        AdapterConfig best = withTotal(smallest);
        long bestCount = Count(best, layers);
        // Counts grow with the total rank, so walk up until they pass the budget.
        for (int total = smallest + 1; bestCount < budget; total++)
        {
            var candidate = withTotal(total);
            long count = Count(candidate, layers);
            if (Math.Abs(count - budget) <= Math.Abs(bestCount - budget)) { best = candidate; bestCount = count; }
            if (count >= budget) break;
        }
        double deviation = Math.Abs(bestCount - budget) / (double)budget;
        if (deviation > tolerance)
            throw new ArgumentException($"{template.PeftType}: the closest count to the budget of {budget:N0} is {bestCount:N0} ({deviation:P1} away, more than {tolerance:P0}).");
        return best;
    }
}
