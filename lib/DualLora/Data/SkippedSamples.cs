namespace DualLora.Data;

/// <summary>What skip mode left out of an instruction-data file: how many samples, for which faults, and the first few of each.</summary>
public sealed class SkippedSamples
{
    /// <summary>How many refused samples of each fault keep their id and message for the report.</summary>
    public const int ExamplesPerFault = 5;

    readonly Dictionary<SampleFault, int> counts = [];
    readonly Dictionary<SampleFault, List<InstructionSampleException>> examples = [];

    public int Count => counts.Values.Sum();
    public IReadOnlyDictionary<SampleFault, int> Counts => counts;

    /// <summary>The ids of the first <see cref="ExamplesPerFault"/> samples refused for <paramref name="fault"/>.</summary>
    public IReadOnlyList<string> FirstIds(SampleFault fault) =>
        examples.TryGetValue(fault, out var list) ? list.Select(e => e.SampleId).ToList() : [];

    /// <summary>The full error of the first sample refused for <paramref name="fault"/>, or null.</summary>
    public string? FirstMessage(SampleFault fault) => examples.TryGetValue(fault, out var list) ? list[0].Message : null;

    internal void Add(InstructionSampleException refused)
    {
        counts[refused.Reason] = counts.GetValueOrDefault(refused.Reason) + 1;
        if (!examples.TryGetValue(refused.Reason, out var list)) examples[refused.Reason] = list = [];
        if (list.Count < ExamplesPerFault) list.Add(refused);
    }

    /// <summary>One line per fault, most frequent first: <c>MissingImageFile: 12 (first ids: a, b, ...)</c>.</summary>
    public override string ToString() => Count == 0 ? "no samples skipped" :
        $"{Count} samples skipped:" + string.Concat(counts.OrderByDescending(c => c.Value).Select(c =>
            $"{Environment.NewLine}  {c.Key}: {c.Value} (first ids: {string.Join(", ", FirstIds(c.Key))})"));
}
