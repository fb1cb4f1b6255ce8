using System.Text.Json;
using System.Text.RegularExpressions;
using DualLora.Display;
using static TorchSharp.torch;

namespace DualLora.Tests.Display;

public class HeatmapFigureTests
{
    [Fact]
    public void A_heatmap_has_its_pixels_axes_titles_and_colour_bar()
    {
        var figure = Charts.Heatmap("gates", tensor(new double[,] { { 0, 1, 2 }, { 3, 4, 5 } }), "token", "rank", "gate t", cellSize: 10) with { Caption = "What is drawn." };
        string svg = figure.ToSvg();
        Assert.Equal(2, Regex.Matches(svg, "<image ").Count);   // the cells, and the colour bar's gradient
        Assert.Single(Regex.Matches(svg, "image-rendering:pixelated"));
        foreach (string text in new[] { ">gates<", ">token<", ">rank<", ">gate t<" }) Assert.Contains(text, svg);
        Assert.Equal(2, Regex.Matches(svg, "<rect x=").Count);   // the panel's outline and the bar's
        Assert.Equal((0, 5), figure.RangeOf(0));
        Assert.Contains("<figcaption>What is drawn.</figcaption>", figure.ToHtml());
    }

    [Fact]
    public void The_colour_scale_is_widened_by_low_and_high_but_never_clips_a_value()
    {
        var weights = new HeatmapPanel("rectified", 1, 3, [0.2, 1.7, 0.4]);
        var figure = Charts.Heatmaps([weights], "expert", "token", "weight", low: 0, high: 1);
        Assert.Equal((0, 1.7), figure.RangeOf(0));
        Assert.Equal((-1, 3), Charts.Heatmaps([new HeatmapPanel("c", 1, 2, [-1, -1])], "r", "c", "v", high: 3).RangeOf(0));
    }

    [Fact]
    public void Shared_scales_have_one_colour_bar_and_separate_scales_one_each()
    {
        HeatmapPanel[] panels = [new("small", 2, 2, [0, 1, 2, 3]), new("large", 2, 2, [0, 10, 20, 30])];
        var shared = Charts.Heatmaps(panels, "r", "c", "v");
        var separate = Charts.Heatmaps(panels, "r", "c", "v", ColourScale.PerPanel);
        Assert.Equal([(0, 30), (0, 30)], new[] { shared.RangeOf(0), shared.RangeOf(1) });
        Assert.Equal([(0, 3), (0, 30)], new[] { separate.RangeOf(0), separate.RangeOf(1) });
        Assert.Single(Regex.Matches(shared.ToSvg(), ">v</text>"));
        Assert.Equal(2, Regex.Matches(separate.ToSvg(), ">v</text>").Count);
    }

    [Fact]
    public void The_plotly_figure_holds_the_values_row_by_row()
    {
        var figure = Charts.Heatmaps([new HeatmapPanel("a", 2, 3, [0.5, 1, 1.5, 2, 2.5, 3]), new HeatmapPanel("b", 1, 1, [7])], "row", "column", "value", ColourScale.PerPanel);
        using var json = JsonDocument.Parse(figure.ToPlotlyJson());
        var traces = json.RootElement.GetProperty("data");
        Assert.Equal(new[] { new[] { 0.5, 1, 1.5 }, [2, 2.5, 3] }, traces[0].GetProperty("z").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()));
        Assert.Equal("x2", traces[1].GetProperty("xaxis").GetString());
        Assert.Equal(6.3, traces[1].GetProperty("zmin").GetDouble(), 9);   // a constant panel (7) gets a range around its value
        Assert.Equal("reversed", json.RootElement.GetProperty("layout").GetProperty("yaxis2").GetProperty("autorange").GetString());
    }

    [Fact]
    public void Bad_input_is_a_clear_error()
    {
        Assert.Equal("Heatmap 'a': the value at row 1, column 0 is NaN; a heatmap can only draw finite numbers.",
            Assert.Throws<ArgumentException>(() => new HeatmapPanel("a", 2, 2, [0, 1, double.NaN, 3])).Message);
        Assert.Equal("Heatmap 'a' is 2 x 2 but has 3 values.", Assert.Throws<ArgumentException>(() => new HeatmapPanel("a", 2, 2, [0, 1, 2])).Message);
        Assert.Equal("Heatmap 'a' needs a 2-D tensor, got shape [4].", Assert.Throws<ArgumentException>(() => new HeatmapPanel("a", zeros(4))).Message);
        Assert.StartsWith("A heatmap figure needs at least one panel.", Assert.Throws<ArgumentException>(() => Charts.Heatmaps([], "r", "c", "v")).Message);
    }
}
