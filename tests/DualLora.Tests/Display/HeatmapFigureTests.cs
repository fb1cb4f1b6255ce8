using System.Globalization;
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

    // The texts of an SVG: where each is anchored, its size and rotation.
    static List<(double X, double Y, double Size, double Rotate, string Anchor, string Text)> Texts(string svg) =>
        Regex.Matches(svg, "<text x=\"([^\"]+)\" y=\"([^\"]+)\" font-size=\"([^\"]+)\" text-anchor=\"([^\"]+)\"[^>]*?(?:rotate\\(([^ ]+) [^>]*)?>([^<]*)</text>")
            .Select(m => (double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
                double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), m.Groups[5].Success ? double.Parse(m.Groups[5].Value, CultureInfo.InvariantCulture) : 0,
                m.Groups[4].Value, m.Groups[6].Value))
            .ToList();

    static HeatmapFigure Grid(ColourScale scale) => Charts.Heatmaps(
        Enumerable.Range(0, 4).Select(i => new HeatmapPanel($"panel {i}", 8, 8, Enumerable.Range(0, 64).Select(v => (v + 1.0) * (i + 1) * 37.5).ToArray())).ToList(),
        "patch row", "patch column", "norm", scale, panelsPerRow: 2);

    [Theory]
    [InlineData(ColourScale.Shared)]
    [InlineData(ColourScale.PerPanel)]
    public void In_a_grid_the_titles_of_a_lower_row_keep_clear_of_the_column_titles_above(ColourScale scale)
    {
        var texts = Texts(Grid(scale).ToSvg());
        var columnTitles = texts.Where(t => t.Text == "patch column").ToList();
        Assert.Equal(4, columnTitles.Count);
        double upperColumnTitles = columnTitles.Min(t => t.Y);
        var lowerTitle = texts.Single(t => t.Text == "panel 2");
        // The upper row's column title ends a quarter of its size below its baseline, the panel title
        // begins about three quarters of its size above its own.
        Assert.True(lowerTitle.Y - 0.75 * lowerTitle.Size - (upperColumnTitles + 0.25 * 13) >= 20,
            $"column title at {upperColumnTitles}, the title below at {lowerTitle.Y}");
    }

    [Fact]
    public void A_colour_bar_title_keeps_clear_of_the_bar_tick_labels()
    {
        var texts = Texts(Grid(ColourScale.PerPanel).ToSvg());
        var barTitles = texts.Where(t => t.Text == "norm").ToList();
        Assert.Equal(4, barTitles.Count);
        Assert.All(barTitles, t => Assert.Equal(90, t.Rotate));
        var barLabels = texts.Where(t => t.Anchor == "start").ToList();   // only the bars' tick labels start at their anchor
        Assert.NotEmpty(barLabels);
        foreach (var title in barTitles)
        {
            // The labels of this bar: left of the title and less than a panel's slot away.
            var labels = barLabels.Where(l => l.X < title.X && title.X - l.X < 100).ToList();
            Assert.NotEmpty(labels);
            double labelsRight = labels.Max(l => l.X + l.Text.Length * 0.6 * l.Size);   // a generous width
            Assert.True(title.X - 0.25 * title.Size - labelsRight >= 6, $"labels end at {labelsRight}, the title at {title.X}");
        }
    }

    [Fact]
    public void The_plotly_figure_puts_the_titles_where_the_svg_does_and_leaves_room_for_the_mode_bar()
    {
        var figure = Grid(ColourScale.PerPanel);
        string svg = figure.ToSvg();
        var texts = Texts(svg);
        double svgWidth = double.Parse(Regex.Match(svg, "viewBox=\"0 0 ([^ ]+) ([^\"]+)\"").Groups[1].Value, CultureInfo.InvariantCulture);
        double svgHeight = double.Parse(Regex.Match(svg, "viewBox=\"0 0 ([^ ]+) ([^\"]+)\"").Groups[2].Value, CultureInfo.InvariantCulture);
        using var json = JsonDocument.Parse(figure.ToPlotlyJson());
        var layout = json.RootElement.GetProperty("layout");
        Assert.Equal(svgHeight + HeatmapFigure.ModeBarRoom, layout.GetProperty("height").GetDouble());
        Assert.Equal(HeatmapFigure.ModeBarRoom, layout.GetProperty("margin").GetProperty("t").GetDouble());
        // No title of plotly's own: neither on the axes nor on the colour bars.
        Assert.False(layout.GetProperty("xaxis3").TryGetProperty("title", out _));
        Assert.False(layout.GetProperty("yaxis3").TryGetProperty("title", out _));
        Assert.All(json.RootElement.GetProperty("data").EnumerateArray(), trace => Assert.False(trace.GetProperty("colorbar").TryGetProperty("title", out _)));

        var annotations = layout.GetProperty("annotations").EnumerateArray().ToList();
        var headings = texts.Where(t => t.Size > 12).ToList();   // titles: 14 and 13 px; tick labels: 12 px
        Assert.Equal(headings.Select(t => t.Text), annotations.Select(a => a.GetProperty("text").GetString()));
        foreach (var (heading, annotation) in headings.Zip(annotations))
        {
            Assert.Equal(heading.Rotate, annotation.GetProperty("textangle").GetDouble());
            double x = annotation.GetProperty("x").GetDouble() * svgWidth, y = (1 - annotation.GetProperty("y").GetDouble()) * svgHeight;
            // The annotation's middle is a third of the size or so from the SVG text's baseline, towards the tops of the letters.
            var (dx, dy) = heading.Rotate switch { 90 => (1, 0), -90 => (-1, 0), _ => (0, -1) };
            Assert.Equal(heading.X + dx * 0.35 * heading.Size, x, tolerance: 0.01);   // the SVG rounds to 0.01
            Assert.Equal(heading.Y + dy * 0.35 * heading.Size, y, tolerance: 0.01);
        }
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
