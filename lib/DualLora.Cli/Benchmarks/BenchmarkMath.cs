namespace DualLora.Cli.Benchmarks;

static class BenchmarkMath
{
    /// <summary>The median, or NaN for no values (a run that timed nothing).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        if (sorted.Count == 0) return double.NaN;
        int middle = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
