using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Analysis;

/// <summary>
/// Counts of values in fixed, equal bins over [<see cref="Low"/>, <see cref="High"/>], filled batch by batch with
/// <see cref="Add"/>. A value below Low counts in the first bin and one above High in the last, so the counts always
/// sum to the number of values added; <see cref="Clipped"/> says how many fell outside the range.
/// </summary>
public sealed class ValueHistogram
{
    readonly long[] counts;

    public double Low { get; }
    public double High { get; }
    public double BinWidth => (High - Low) / counts.Length;
    public IReadOnlyList<long> Counts => counts;
    public long Total { get; private set; }
    /// <summary>Values below Low or above High (counted in the edge bins).</summary>
    public long Clipped { get; private set; }

    public ValueHistogram(double low, double high, int bins)
    {
        if (!(high > low)) throw new ArgumentException($"the range [{low}, {high}] is empty.");
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), bins, "a histogram needs at least one bin.");
        Low = low;
        High = high;
        counts = new long[bins];
    }

    /// <summary>Counts every element of <paramref name="values"/> (any shape).</summary>
    public void Add(Tensor values)
    {
        using var scope = NewDisposeScope();
        var flat = values.detach().reshape(-1).to(ScalarType.Float64);
        Clipped += flat.lt(Low).sum().ToInt64() + flat.gt(High).sum().ToInt64();
        var bin = ((flat - Low) / BinWidth).floor().clamp(0, counts.Length - 1).to(ScalarType.Int64);
        var added = bin.bincount(null, counts.Length).data<long>().ToArray();
        for (int i = 0; i < counts.Length; i++) counts[i] += added[i];
        Total += flat.shape[0];
    }

    /// <summary>The centre of each bin.</summary>
    public IReadOnlyList<double> Centers => Enumerable.Range(0, counts.Length).Select(i => Low + (i + 0.5) * BinWidth).ToArray();

    /// <summary>Counts / (total · bin width): a density that integrates to 1 over the range (all zero before any value).</summary>
    public IReadOnlyList<double> Densities => counts.Select(c => Total == 0 ? 0 : c / (Total * BinWidth)).ToArray();
}
