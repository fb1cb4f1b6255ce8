using System.Text.RegularExpressions;
using DualLora.Display;

namespace DualLora.Tests.Display;

public class BarChartTests
{
    [Fact]
    public void Bars_whiskers_and_the_reference_land_where_the_axis_puts_them()
    {
        // Values up to 40 + 10 = 50: y ticks 0, 10, ..., 50 over the plot area's height.
        var chart = Charts.Bars("t", "task", "exact match %", ["name", "list"],
            new BarSeries("LoRA", [20, 40], [0, 10]), new BarSeries("Dual-LoRA", [30, 10])) with { Reference = [10, 5], ReferenceName = "chance" };
        Assert.Equal([0.0, 10, 20, 30, 40, 50], chart.YTicks.Values);
        var (left, top, right, bottom) = chart.PlotArea;
        double Y(double value) => bottom - value / 50 * (bottom - top);
        string svg = chart.ToSvg();

        // Four bars and two legend swatches; LoRA's bar of 40 in the second group reaches y(40).
        var bars = Regex.Matches(svg, "<rect x=\"([\\d.]+)\" y=\"([\\d.]+)\" width=\"([\\d.]+)\" height=\"([\\d.]+)\"").ToList();   // the background rect has no x
        Assert.Equal(6, bars.Count);
        var (x, width) = chart.Bar(1, 0);
        var loraList = bars.Single(m => Math.Abs(double.Parse(m.Groups[1].Value) - (x + 1)) < 0.01);
        Assert.Equal(Y(40), double.Parse(loraList.Groups[2].Value), 1);
        Assert.Equal(Y(0) - Y(40), double.Parse(loraList.Groups[4].Value), 1);
        Assert.Equal(width - 2, double.Parse(loraList.Groups[3].Value), 1);
        // One whisker (LoRA's list: 30 to 50), three lines each; none where the error is 0 or not given.
        string middle = SvgCanvas.N(x + width / 2);
        Assert.Contains($"x1=\"{middle}\" y1=\"{SvgCanvas.N(Y(50))}\" x2=\"{middle}\" y2=\"{SvgCanvas.N(Y(30))}\"", svg);
        Assert.Contains("chance", svg);
        Assert.Contains($"y1=\"{SvgCanvas.N(Y(5))}\"", svg);   // the chance dash of the list group

        var plotly = chart.ToPlotly();
        Assert.Equal(3, plotly["data"]!.AsArray().Count);
        Assert.Equal(10.0, (double)plotly["data"]![0]!["error_y"]!["array"]![1]!);
        Assert.Null(plotly["data"]![1]!["error_y"]);
        Assert.Equal("group", (string)plotly["layout"]!["barmode"]!);
    }

    [Fact]
    public void Bad_bars_are_refused_with_their_name()
    {
        Assert.Contains("'a' have 1 values for 2 categories", Assert.Throws<ArgumentException>(() => Charts.Bars("t", "x", "y", ["p", "q"], new BarSeries("a", [1]))).Message);
        Assert.Contains("Bars 'b'", Assert.Throws<ArgumentException>(() => new BarSeries("b", [1, double.NaN])).Message);
        Assert.Contains("Bars 'c'", Assert.Throws<ArgumentException>(() => new BarSeries("c", [1], [-1])).Message);
    }
}
