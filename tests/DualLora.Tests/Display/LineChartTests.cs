using System.Text.Json;
using System.Text.RegularExpressions;
using DualLora.Display;
using Microsoft.DotNet.Interactive.Formatting;

namespace DualLora.Tests.Display;

public class LineChartTests
{
    [Fact]
    public void A_small_series_lands_where_the_axes_put_it()
    {
        // y ticks 0, 5, ..., 20 (labels at most "20": 2 x 7.2 px wide), so the plot area is x 54..700, y 44..364.
        var chart = Charts.Lines("t", "x", "y", new Series("a", [0, 1, 2], [0, 10, 20]));
        Assert.Equal((54, 44, 700, 364), chart.PlotArea);
        string svg = chart.ToSvg();
        Assert.Single(Regex.Matches(svg, "<polyline"));
        Assert.Contains("points=\"54,364 377,204 700,44\"", svg);
        Assert.Equal(3, Regex.Matches(svg, "<circle").Count);   // markers, no legend for a single series
    }

    [Theory]
    [InlineData(0, 20, new[] { 0.0, 5, 10, 15, 20 })]
    [InlineData(0, 2, new[] { 0.0, 0.5, 1, 1.5, 2 })]
    [InlineData(1, 150, new[] { 0.0, 20, 40, 60, 80, 100, 120, 140, 160 })]
    [InlineData(-3.2, 1.7, new[] { -4.0, -3, -2, -1, 0, 1, 2 })]
    [InlineData(0.1, 0.3, new[] { 0.1, 0.15, 0.2, 0.25, 0.3 })]
    [InlineData(5, 5, new[] { 4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6 })]
    public void Ticks_are_round_and_cover_the_data(double low, double high, double[] expected) =>
        Assert.Equal(expected, Ticks.Covering(low, high).Values);

    [Fact]
    public void Tick_labels_have_the_decimals_of_the_step_and_a_true_minus()
    {
        Assert.Equal(["−0.4", "0.0", "0.4"], new[] { -0.4, 0, 0.4 }.Select(v => Ticks.Label(v, 0.2)));
        Assert.Equal("120", Ticks.Label(120, 20));
        Assert.Equal("0", Ticks.Label(-1e-17, 1));
        Assert.Equal([0.2, 0.4, 0.6, 0.8], Ticks.Within(0.13, 0.87, 5).Values);
    }

    [Fact]
    public void The_plotly_figure_holds_the_same_numbers()
    {
        double[] x = [1, 2, 3], y = [0.1, 1.0 / 3, -2.5e-300];
        var chart = Charts.Lines("loss", "step", "log10 loss", new Series("α / r", x, y), new Series("b", x, [1, 2, 3]));
        using var figure = JsonDocument.Parse(chart.ToPlotlyJson());
        var traces = figure.RootElement.GetProperty("data");
        Assert.Equal(2, traces.GetArrayLength());
        Assert.Equal("α / r", traces[0].GetProperty("name").GetString());
        Assert.Equal(x, traces[0].GetProperty("x").EnumerateArray().Select(v => v.GetDouble()));
        Assert.Equal(y, traces[0].GetProperty("y").EnumerateArray().Select(v => v.GetDouble()));
        Assert.Equal("lines+markers", traces[0].GetProperty("mode").GetString());
        var layout = figure.RootElement.GetProperty("layout");
        Assert.Equal("step", layout.GetProperty("xaxis").GetProperty("title").GetProperty("text").GetString());
        Assert.True(layout.GetProperty("showlegend").GetBoolean());
    }

    [Fact]
    public void The_html_is_the_figure_the_site_expects_and_nothing_in_it_can_close_the_script()
    {
        var chart = Charts.Lines("</script><script>alert(1)</script>", "x", "y", new Series("<!-- a", [0, 1], [1, 2])) with { Caption = "Loss & <b>steps</b>" };
        string html = chart.ToHtml();
        Assert.StartsWith("<figure class=\"duallora-chart\">\n<svg ", html);
        Assert.EndsWith("<figcaption>Loss &amp; &lt;b&gt;steps&lt;/b&gt;</figcaption>\n</figure>", html);
        var script = Regex.Match(html, "<script type=\"application/json\" class=\"duallora-plotly\">(.*?)</script>", RegexOptions.Singleline);
        Assert.True(script.Success);
        Assert.Single(Regex.Matches(html, "</script>"));
        Assert.DoesNotContain("<", script.Groups[1].Value);
        using var figure = JsonDocument.Parse(script.Groups[1].Value);
        Assert.Equal("</script><script>alert(1)</script>", figure.RootElement.GetProperty("layout").GetProperty("title").GetProperty("text").GetString());
        Assert.Equal("<!-- a", figure.RootElement.GetProperty("data")[0].GetProperty("name").GetString());
    }

    [Fact]
    public void Rendering_is_deterministic_and_the_notebook_formatter_uses_it()
    {
        LineChart Make() => Charts.Lines("t", "x", "y", new Series("a", [0, 1, 2], [3, 1, 2]), new Series("b", [0, 2], [1, 1]));
        Assert.Equal(Make().ToHtml(), Make().ToHtml());
        Formatters.Register();
        Assert.Equal(Make().ToHtml(), Make().ToDisplayString("text/html"));
        Assert.Contains("a (3 points), b (2 points)", Make().ToDisplayString("text/plain"));
    }

    [Fact]
    public void Bad_series_are_clear_errors()
    {
        Assert.Equal("Series 'a' has 3 x values and 2 y values.", Assert.Throws<ArgumentException>(() => new Series("a", [1, 2, 3], [1, 2])).Message);
        Assert.Equal("Series 'a' has no points.", Assert.Throws<ArgumentException>(() => new Series("a", [], [])).Message);
        Assert.Equal("Series 'a': y[1] is NaN; a chart can only draw finite numbers.", Assert.Throws<ArgumentException>(() => new Series("a", [1, 2], [1, double.NaN])).Message);
        Assert.Contains("x[0] is Infinity", Assert.Throws<ArgumentException>(() => new Series("a", [double.PositiveInfinity], [1])).Message);
        Assert.StartsWith("Chart 't' needs at least one series.", Assert.Throws<ArgumentException>(() => Charts.Lines("t", "x", "y")).Message);
    }
}
