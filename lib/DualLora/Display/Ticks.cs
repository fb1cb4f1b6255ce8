using System.Globalization;

namespace DualLora.Display;

/// <summary>
/// Round tick values for an axis (steps of 1, 2 or 5 times a power of ten) and their labels, as
/// charting libraries choose them, so a reader can read values off a figure.
/// </summary>
public static class Ticks
{
    /// <summary>
    /// About <paramref name="target"/> round ticks covering [<paramref name="low"/>, <paramref name="high"/>]:
    /// the first at or below <paramref name="low"/>, the last at or above <paramref name="high"/>.
    /// An empty span is widened so that it still gets ticks.
    /// </summary>
    public static (IReadOnlyList<double> Values, double Step) Covering(double low, double high, int target = 6)
    {
        if (!double.IsFinite(low) || !double.IsFinite(high) || low > high)
            throw new ArgumentException($"Ticks need a finite range with low <= high, got [{low}, {high}].");
        if (high == low)
        {
            double pad = low == 0 ? 1 : Math.Abs(low) * 0.1;
            (low, high) = (low - pad, high + pad);
        }
        double step = Step(high - low, target);
        long first = (long)Math.Floor(low / step + 1e-9), last = (long)Math.Ceiling(high / step - 1e-9);
        return (Enumerable.Range(0, (int)(last - first + 1)).Select(i => Clean((first + i) * step, step)).ToList(), step);
    }

    /// <summary>The round ticks that lie inside [<paramref name="low"/>, <paramref name="high"/>] (for a colour bar, whose ends are the data's).</summary>
    public static (IReadOnlyList<double> Values, double Step) Within(double low, double high, int target = 5)
    {
        var (values, step) = Covering(low, high, target);
        double slack = step * 1e-9;
        return (values.Where(v => v >= low - slack && v <= high + slack).ToList(), step);
    }

    /// <summary>A tick's label: as many decimals as the step needs, a true minus sign, no "-0".</summary>
    public static string Label(double value, double step)
    {
        int decimals = Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9));
        string text = Math.Round(value, decimals).ToString("F" + decimals, CultureInfo.InvariantCulture);
        if (text.TrimStart('-').All(c => c == '0' || c == '.')) text = text.TrimStart('-');
        return text.Replace('-', '−');
    }

    static double Step(double span, int target)
    {
        double rough = span / Math.Max(1, target - 1);
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        double residual = rough / magnitude;
        return magnitude * (residual < 1.5 ? 1 : residual < 3 ? 2 : residual < 7 ? 5 : 10);
    }

    // k * step carries float noise (3 * 0.1 = 0.30000000000000004); round it to the step's decimals.
    static double Clean(double value, double step) =>
        Math.Round(value, Math.Clamp(-(int)Math.Floor(Math.Log10(step)) + 1, 0, 15));
}
