using System.Text.Json.Nodes;

namespace DualLora.Display;

/// <summary>One named line of a chart: finite x and y values, as many of one as of the other.</summary>
public sealed record Series
{
    public string Name { get; }
    public IReadOnlyList<double> X { get; }
    public IReadOnlyList<double> Y { get; }

    public Series(string name, IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException($"Series '{name}' has {x.Count} x values and {y.Count} y values.");
        if (x.Count == 0) throw new ArgumentException($"Series '{name}' has no points.");
        Check(name, "x", x);
        Check(name, "y", y);
        (Name, X, Y) = (name, x.ToArray(), y.ToArray());
    }

    static void Check(string name, string axis, IReadOnlyList<double> values)
    {
        for (int i = 0; i < values.Count; i++)
            if (!double.IsFinite(values[i]))
                throw new ArgumentException($"Series '{name}': {axis}[{i}] is {values[i].ToString(System.Globalization.CultureInfo.InvariantCulture)}; a chart can only draw finite numbers.");
    }
}

/// <summary>
/// A line chart (see <see cref="Charts.Lines"/>): title, axis titles with round ticks, light grid lines,
/// one coloured line per series with markers where the points are few enough to tell apart, and a
/// legend to the right when there is more than one series.
/// </summary>
public sealed record LineChart : Figure
{
    public const double Width = 720, Height = 420;
    /// <summary>Series with more points than this are drawn as lines only: markers would merge into a thick line.</summary>
    public const int MaxMarkedPoints = 60;

    const double TitleSize = 16, LabelSize = 13, TickSize = 12, Top = 44, Bottom = 56, MarkerRadius = 3;

    public string Title { get; }
    public string XTitle { get; }
    public string YTitle { get; }
    public IReadOnlyList<Series> Series { get; }

    public LineChart(string title, string xTitle, string yTitle, IReadOnlyList<Series> series)
    {
        if (series.Count == 0) throw new ArgumentException($"Chart '{title}' needs at least one series.", nameof(series));
        (Title, XTitle, YTitle, Series) = (title, xTitle, yTitle, series.ToArray());
    }

    /// <summary>The x axis: round ticks covering every series' x values.</summary>
    public (IReadOnlyList<double> Values, double Step) XTicks => Ticks.Covering(Series.Min(s => s.X.Min()), Series.Max(s => s.X.Max()));

    /// <summary>The y axis: round ticks covering every series' y values.</summary>
    public (IReadOnlyList<double> Values, double Step) YTicks => Ticks.Covering(Series.Min(s => s.Y.Min()), Series.Max(s => s.Y.Max()));

    bool ShowsLegend => Series.Count > 1;
    bool Marked(Series series) => series.X.Count <= MaxMarkedPoints;

    /// <summary>The plot area in SVG pixels: left, top, right, bottom.</summary>
    public (double Left, double Top, double Right, double Bottom) PlotArea
    {
        get
        {
            var (yTicks, yStep) = YTicks;
            double labels = yTicks.Max(t => SvgCanvas.TextWidth(Ticks.Label(t, yStep), TickSize));
            double legend = ShowsLegend ? 42 + Series.Max(s => SvgCanvas.TextWidth(s.Name, LabelSize)) : 0;
            return (Math.Round(28 + labels + 12), Top, Width - (ShowsLegend ? 12 : 20) - legend, Height - Bottom);
        }
    }

    /// <summary>Where a data point lands in the SVG.</summary>
    public (double X, double Y) Place(double x, double y)
    {
        var (xTicks, _) = XTicks;
        var (yTicks, _) = YTicks;
        var (left, top, right, bottom) = PlotArea;
        return (left + (x - xTicks[0]) / (xTicks[^1] - xTicks[0]) * (right - left),
                bottom - (y - yTicks[0]) / (yTicks[^1] - yTicks[0]) * (bottom - top));
    }

    public override string ToSvg()
    {
        var canvas = new SvgCanvas(Width, Height, Title);
        var (left, top, right, bottom) = PlotArea;
        var (xTicks, xStep) = XTicks;
        var (yTicks, yStep) = YTicks;

        foreach (double t in xTicks)
        {
            double x = Place(t, yTicks[0]).X;
            canvas.Line(x, top, x, bottom, SvgCanvas.Faint);
            canvas.Line(x, bottom, x, bottom + 5, SvgCanvas.AxisColour);
            canvas.Text(x, bottom + 19, Ticks.Label(t, xStep), TickSize);
        }
        foreach (double t in yTicks)
        {
            double y = Place(xTicks[0], t).Y;
            canvas.Line(left, y, right, y, SvgCanvas.Faint);
            canvas.Line(left - 5, y, left, y, SvgCanvas.AxisColour);
            canvas.Text(left - 8, y + 4, Ticks.Label(t, yStep), TickSize, anchor: "end");
        }
        canvas.Line(left, bottom, right, bottom, SvgCanvas.AxisColour);
        canvas.Line(left, top, left, bottom, SvgCanvas.AxisColour);

        canvas.Text((left + right) / 2, 26, Title, TitleSize, bold: true);
        canvas.Text((left + right) / 2, Height - 14, XTitle, LabelSize);
        canvas.Text(18, (top + bottom) / 2, YTitle, LabelSize, rotate: -90);

        for (int s = 0; s < Series.Count; s++)
        {
            var series = Series[s];
            string colour = Palette[s % Palette.Length];
            var points = series.X.Zip(series.Y, Place).ToList();
            canvas.Polyline(points, colour);
            if (Marked(series))
                foreach (var (x, y) in points) canvas.Circle(x, y, MarkerRadius, colour);
        }

        if (ShowsLegend)
            for (int s = 0; s < Series.Count; s++)
            {
                string colour = Palette[s % Palette.Length];
                double x = right + 16, y = top + 8 + s * 22;
                canvas.Line(x, y, x + 20, y, colour, 2);
                if (Marked(Series[s])) canvas.Circle(x + 10, y, MarkerRadius, colour);
                canvas.Text(x + 26, y + 4, Series[s].Name, LabelSize, anchor: "start");
            }
        return canvas.ToString();
    }

    public override JsonObject ToPlotly()
    {
        var data = new JsonArray();
        for (int s = 0; s < Series.Count; s++)
        {
            var series = Series[s];
            string colour = Palette[s % Palette.Length];
            data.Add(new JsonObject
            {
                ["type"] = "scatter",
                ["mode"] = Marked(series) ? "lines+markers" : "lines",
                ["name"] = series.Name,
                ["x"] = new JsonArray(series.X.Select(v => (JsonNode)v).ToArray()),
                ["y"] = new JsonArray(series.Y.Select(v => (JsonNode)v).ToArray()),
                ["line"] = new JsonObject { ["color"] = colour, ["width"] = 2 },
                ["marker"] = new JsonObject { ["color"] = colour, ["size"] = 6 },
            });
        }
        var layout = new JsonObject
        {
            ["title"] = PlotlyTitle(Title),
            ["xaxis"] = new JsonObject { ["title"] = PlotlyTitle(XTitle) },
            ["yaxis"] = new JsonObject { ["title"] = PlotlyTitle(YTitle) },
            ["showlegend"] = ShowsLegend,
            ["width"] = Width,
            ["height"] = Height,
            ["font"] = new JsonObject { ["family"] = SvgCanvas.FontFamily },
        };
        return new JsonObject { ["data"] = data, ["layout"] = layout };
    }

    public override string ToString() =>
        $"Line chart '{Title}' ({XTitle} against {YTitle}): {string.Join(", ", Series.Select(s => $"{s.Name} ({s.X.Count} points)"))}";
}
