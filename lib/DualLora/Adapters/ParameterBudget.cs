using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>
/// Trainable-parameter budgets, so that methods are compared at equal cost (METHOD.md §2): counts what an
/// adapter config adds to a set of layers, and chooses the rank that brings a method to a given budget.
/// </summary>
public static class ParameterBudget
{
    /// <summary>(d_in, d_out) of every layer the config would adapt in <paramref name="model"/>.</summary>
    public static IReadOnlyList<(long In, long Out)> TargetShapes(nn.Module model, AdapterConfig config) =>
        AdapterInjection.FindTargets(model, config).Select(t => (t.Layer.InFeatures, t.Layer.OutFeatures)).ToList();

    public static long Count(AdapterConfig config, IEnumerable<(long In, long Out)> layers) =>
        layers.Sum(l => config.ParameterCount(l.In, l.Out));

    /// <summary>
    /// The config with its rank chosen so its parameter count is closest to <paramref name="budget"/>:
    /// the rank r for LoRA and Dual-LoRA; for a LoRA-MoE the total rank over its experts, spread as evenly
    /// as possible (equal expert ranks move in steps of E·(d_in + d_out), too coarse to match within 2%).
    /// Throws if the closest count is further than <paramref name="tolerance"/> from the budget.
    /// </summary>
    public static AdapterConfig Match(AdapterConfig template, IReadOnlyList<(long In, long Out)> layers, long budget, double tolerance = 0.02)
    {
        Func<int, AdapterConfig> withRank = template switch
        {
            LoraConfig lora => r => lora with { Rank = r },
            DualLoraConfig dual => r => dual with { Rank = r },
            MoeLoraConfig moe => total => moe with { ExpertRanks = Spread(total, moe.Experts), ExpertRank = (int)Math.Ceiling(total / (double)moe.Experts) },
            _ => throw new ArgumentException($"no budget rule for {template.GetType().Name}"),
        };
        int smallest = template is MoeLoraConfig m ? m.Experts : 1;
        AdapterConfig best = withRank(smallest);
        long bestCount = Count(best, layers);
        // Counts grow with the rank, so walk up until they pass the budget.
        for (int rank = smallest + 1; bestCount < budget; rank++)
        {
            var candidate = withRank(rank);
            long count = Count(candidate, layers);
            if (Math.Abs(count - budget) <= Math.Abs(bestCount - budget)) { best = candidate; bestCount = count; }
            if (count >= budget) break;
        }
        double deviation = Math.Abs(bestCount - budget) / (double)budget;
        if (deviation > tolerance)
            throw new ArgumentException($"{template.PeftType}: the closest count to the budget of {budget:N0} is {bestCount:N0} ({deviation:P1} away, more than {tolerance:P0}).");
        return best;
    }

    static IReadOnlyList<int> Spread(int total, int experts) =>
        Enumerable.Range(0, experts).Select(i => total / experts + (i < total % experts ? 1 : 0)).ToList();
}
