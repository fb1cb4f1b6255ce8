using System.Text.Json.Nodes;

namespace DualLora.Display;

/// <summary>
/// One named group of bars of a <see cref="BarChart"/>: a value per category, and optionally an error per category
/// (drawn as a whisker of ± that much, e.g. a standard deviation over seeds).
/// </summary>
public sealed record BarSeries
{
    public string Name { get; }
    public IReadOnlyList<double> Values { get; }
    public IReadOnlyList<double>? Errors { get; }

    public BarSeries(string name, IReadOnlyList<double> values, IReadOnlyList<double>? errors = null)
    {
        if (errors != null && errors.Count != values.Count) throw new ArgumentException($"Bars '{name}' have {values.Count} values and {errors.Count} errors.");
        for (int i = 0; i < values.Count; i++)
            if (!double.IsFinite(values[i]) || (errors != null && !(double.IsFinite(errors[i]) && errors[i] >= 0)))
                throw new ArgumentException($"Bars '{name}': category {i} has value {values[i]} and error {errors?[i]}; bars need finite values and finite errors of 0 or more.");
        (Name, Values, Errors) = (name, values.ToArray(), errors?.ToArray());
    }
}

/// <summary>
/// Grouped bars (see <see cref="Charts.Bars"/>): one group per category along x, one coloured bar per series inside it,
/// whiskers where the series has errors, and an optional reference per category drawn as a black dash across its
/// group (a chance level, say). The y axis starts at 0 unless a value is negative.
/// </summary>
public sealed record BarChart : Figure
{
    public const double Width = 760, Height = 420;
    const double TitleSize = 16, LabelSize = 13, TickSize = 12, Top = 44, Bottom = 64, Whisker = 4;

    public string Title { get; }
    public string XTitle { get; }
    public string YTitle { get; }
    public IReadOnlyList<string> Categories { get; }
    public IReadOnlyList<BarSeries> Series { get; }
    /// <summary>A value per category drawn as a dash across its group, named <see cref="ReferenceName"/> in the legend; null draws none.</summary>
    public IReadOnlyList<double>? Reference { get; init; }
    public string ReferenceName { get; init; } = "reference";

    public BarChart(string title, string xTitle, string yTitle, IReadOnlyList<string> categories, IReadOnlyList<BarSeries> series)
    {
        if (categories.Count == 0 || series.Count == 0) throw new ArgumentException($"Chart '{title}' needs at least one category and one series.");
        foreach (var s in series)
            if (s.Values.Count != categories.Count)
                throw new ArgumentException($"Bars '{s.Name}' have {s.Values.Count} values for {categories.Count} categories.");
        (Title, XTitle, YTitle, Categories, Series) = (title, xTitle, yTitle, categories.ToArray(), series.ToArray());
    }

    IEnumerable<double> Extremes()
    {
        foreach (var s in Series)
            for (int i = 0; i < s.Values.Count; i++)
            {
                double error = s.Errors?[i] ?? 0;
                yield return s.Values[i] + error;
                yield return s.Values[i] - error;
            }
        foreach (var r in Reference ?? []) yield return r;
        yield return 0;
    }

    /// <summary>The y axis: round ticks covering 0, every bar with its whisker and every reference.</summary>
    public (IReadOnlyList<double> Values, double Step) YTicks => Ticks.Covering(Extremes().Min(), Extremes().Max());

    /// <summary>The plot area in SVG pixels: left, top, right, bottom.</summary>
    public (double Left, double Top, double Right, double Bottom) PlotArea
    {
        get
        {
            var (yTicks, yStep) = YTicks;
            double labels = yTicks.Max(t => SvgCanvas.TextWidth(Ticks.Label(t, yStep), TickSize));
            var names = Series.Select(s => s.Name).Concat(Reference is null ? [] : [ReferenceName]);
            double legend = 42 + names.Max(n => SvgCanvas.TextWidth(n, LabelSize));
            return (Math.Round(28 + labels + 12), Top, Width - 12 - legend, Height - Bottom);
        }
    }

    double PlaceY(double value)
    {
        var (ticks, _) = YTicks;
        var (_, top, _, bottom) = PlotArea;
        return bottom - (value - ticks[0]) / (ticks[^1] - ticks[0]) * (bottom - top);
    }

    /// <summary>The left edge and width of bar <paramref name="series"/> of category <paramref name="category"/>.</summary>
    public (double X, double Width) Bar(int category, int series)
    {
        var (left, _, right, _) = PlotArea;
        double group = (right - left) / Categories.Count, inner = group * 0.8, width = inner / Series.Count;
        return (left + category * group + (group - inner) / 2 + series * width, width);
    }

    public override string ToSvg()
    {
        var canvas = new SvgCanvas(Width, Height, Title);
        var (left, top, right, bottom) = PlotArea;
        var (yTicks, yStep) = YTicks;
        foreach (double t in yTicks)
        {
            double y = PlaceY(t);
            canvas.Line(left, y, right, y, SvgCanvas.Faint);
            canvas.Line(left - 5, y, left, y, SvgCanvas.AxisColour);
            canvas.Text(left - 8, y + 4, Ticks.Label(t, yStep), TickSize, anchor: "end");
        }
        canvas.Line(left, PlaceY(0), right, PlaceY(0), SvgCanvas.AxisColour);
        canvas.Line(left, top, left, bottom, SvgCanvas.AxisColour);
        canvas.Text((left + right) / 2, 26, Title, TitleSize, bold: true);
        canvas.Text((left + right) / 2, Height - 14, XTitle, LabelSize);
        canvas.Text(18, (top + bottom) / 2, YTitle, LabelSize, rotate: -90);

        for (int c = 0; c < Categories.Count; c++)
        {
            var (first, _) = Bar(c, 0);
            var (last, lastWidth) = Bar(c, Series.Count - 1);
            canvas.Text((first + last + lastWidth) / 2, bottom + 19, Categories[c], TickSize);
            for (int s = 0; s < Series.Count; s++)
            {
                var (x, width) = Bar(c, s);
                double value = Series[s].Values[c], y0 = PlaceY(0), y = PlaceY(value);
                canvas.Rect(x + 1, Math.Min(y, y0), Math.Max(width - 2, 1), Math.Abs(y0 - y), Palette[s % Palette.Length]);
                if (Series[s].Errors is { } errors && errors[c] > 0)
                {
                    double middle = x + width / 2, high = PlaceY(value + errors[c]), low = PlaceY(value - errors[c]);
                    canvas.Line(middle, high, middle, low, SvgCanvas.Ink);
                    canvas.Line(middle - Whisker, high, middle + Whisker, high, SvgCanvas.Ink);
                    canvas.Line(middle - Whisker, low, middle + Whisker, low, SvgCanvas.Ink);
                }
            }
            if (Reference is { } reference)
                canvas.Line(first - 3, PlaceY(reference[c]), last + lastWidth + 3, PlaceY(reference[c]), SvgCanvas.Ink, 2.5);
        }

        for (int s = 0; s < Series.Count; s++)
        {
            double x = right + 16, y = top + 8 + s * 22;
            canvas.Rect(x, y - 6, 14, 12, Palette[s % Palette.Length]);
            canvas.Text(x + 22, y + 4, Series[s].Name, LabelSize, anchor: "start");
        }
        if (Reference is not null)
        {
            double x = right + 16, y = top + 8 + Series.Count * 22;
            canvas.Line(x, y, x + 14, y, SvgCanvas.Ink, 2.5);
            canvas.Text(x + 22, y + 4, ReferenceName, LabelSize, anchor: "start");
        }
        return canvas.ToString();
    }

    public override JsonObject ToPlotly()
    {
        var categories = new JsonArray(Categories.Select(c => (JsonNode)c).ToArray());
        var data = new JsonArray();
        for (int s = 0; s < Series.Count; s++)
        {
            var bars = new JsonObject
            {
                ["type"] = "bar",
                ["name"] = Series[s].Name,
                ["x"] = categories.DeepClone(),
                ["y"] = new JsonArray(Series[s].Values.Select(v => (JsonNode)v).ToArray()),
                ["marker"] = new JsonObject { ["color"] = Palette[s % Palette.Length] },
            };
            if (Series[s].Errors is { } errors)
                bars["error_y"] = new JsonObject { ["type"] = "data", ["array"] = new JsonArray(errors.Select(e => (JsonNode)e).ToArray()), ["visible"] = true };
            data.Add(bars);
        }
        if (Reference is { } reference)
            data.Add(new JsonObject
            {
                ["type"] = "scatter",
                ["mode"] = "markers",
                ["name"] = ReferenceName,
                ["x"] = categories.DeepClone(),
                ["y"] = new JsonArray(reference.Select(v => (JsonNode)v).ToArray()),
                ["marker"] = new JsonObject { ["color"] = SvgCanvas.Ink, ["symbol"] = "line-ew-open", ["size"] = 24, ["line"] = new JsonObject { ["width"] = 3 } },
            });
        var layout = new JsonObject
        {
            ["title"] = PlotlyTitle(Title),
            ["barmode"] = "group",
            ["xaxis"] = new JsonObject { ["title"] = PlotlyTitle(XTitle) },
            ["yaxis"] = new JsonObject { ["title"] = PlotlyTitle(YTitle) },
            ["width"] = Width,
            ["height"] = Height,
            ["font"] = new JsonObject { ["family"] = SvgCanvas.FontFamily },
        };
        return new JsonObject { ["data"] = data, ["layout"] = layout };
    }

    public override string ToString() =>
        $"Bar chart '{Title}': {Categories.Count} categories ({string.Join(", ", Categories)}), series {string.Join(", ", Series.Select(s => s.Name))}";
}
