using System.Text.Json.Nodes;
using TorchSharp;

namespace DualLora.Display;

/// <summary>One heatmap of a <see cref="HeatmapFigure"/>: a title and a matrix of finite values (rows x columns).</summary>
public sealed record HeatmapPanel
{
    public string Title { get; }
    public int Rows { get; }
    public int Columns { get; }
    /// <summary>The values row by row.</summary>
    public IReadOnlyList<double> Values { get; }

    public HeatmapPanel(string title, int rows, int columns, IReadOnlyList<double> values)
    {
        if (rows < 1 || columns < 1) throw new ArgumentException($"Heatmap '{title}' has {rows} x {columns} cells; it needs at least one.");
        if (values.Count != rows * columns) throw new ArgumentException($"Heatmap '{title}' is {rows} x {columns} but has {values.Count} values.");
        for (int i = 0; i < values.Count; i++)
            if (!double.IsFinite(values[i]))
                throw new ArgumentException($"Heatmap '{title}': the value at row {i / columns}, column {i % columns} is {values[i].ToString(System.Globalization.CultureInfo.InvariantCulture)}; a heatmap can only draw finite numbers.");
        (Title, Rows, Columns, Values) = (title, rows, columns, values.ToArray());
    }

    /// <summary>A panel from a 2-D tensor (copied to the CPU as doubles).</summary>
    public HeatmapPanel(string title, torch.Tensor values) : this(title, Rows2D(title, values), (int)values.shape[^1], Read(values)) { }

    static int Rows2D(string title, torch.Tensor values) =>
        values.dim() == 2 ? (int)values.shape[0] : throw new ArgumentException($"Heatmap '{title}' needs a 2-D tensor, got shape [{string.Join(", ", values.shape)}].");

    static double[] Read(torch.Tensor values)
    {
        using var cpu = values.detach().to(torch.CPU).to(torch.float64).contiguous();
        return cpu.data<double>().ToArray();
    }

    public double Min => Values.Min();
    public double Max => Values.Max();
}

/// <summary>Whether the panels of a heatmap figure share one colour scale (comparable colours) or each has its own.</summary>
public enum ColourScale { Shared, PerPanel }

/// <summary>
/// One or more heatmaps side by side (wrapping to further rows when wide), each cell a square of
/// <see cref="CellSize"/> pixels coloured on viridis (dark purple low, yellow high), with row and
/// column indices on the axes (counted from 0), the axis titles, and a colour bar with its scale: one
/// for all panels when they share a scale, else one per panel. The scale always covers every value;
/// <see cref="Low"/> and <see cref="High"/> can only widen it (e.g. to start at 0), never clip it.
/// </summary>
public sealed record HeatmapFigure : Figure
{
    /// <summary>Panels wrap to a new row beyond this width, in pixels.</summary>
    public const double MaxWidth = 960;

    /// <summary>
    /// Height of the strip the plotly figure keeps free above the panels for plotly's mode bar (the
    /// zoom and download buttons at the top right). plotly shows the bar only while the pointer is over
    /// the chart, but always on a device that cannot hover (a phone, a tablet, a headless browser), and
    /// there it would cover the titles of the top row.
    /// </summary>
    public const double ModeBarRoom = 24;

    const double TitleSize = 14, LabelSize = 13, TickSize = 12, BarWidth = 14, MinBarHeight = 120, Gap = 24;
    // Above a panel: its title; below: its column indices and the column title; between two rows of panels: RowGap more.
    const double Above = 28, Below = 44, RowGap = 16;

    public IReadOnlyList<HeatmapPanel> Panels { get; }
    public string RowTitle { get; }
    public string ColumnTitle { get; }
    public string ValueTitle { get; }
    public ColourScale Scale { get; }
    public double? Low { get; }
    public double? High { get; }
    public int CellSize { get; }
    /// <summary>At most this many panels in a row (a 2 x 2 grid of four, say); null: as many as fit in <see cref="MaxWidth"/>.</summary>
    public int? PanelsPerRow { get; }

    public HeatmapFigure(IReadOnlyList<HeatmapPanel> panels, string rowTitle, string columnTitle, string valueTitle,
        ColourScale scale = ColourScale.Shared, double? low = null, double? high = null, int cellSize = 8, int? panelsPerRow = null)
    {
        if (panelsPerRow < 1) throw new ArgumentOutOfRangeException(nameof(panelsPerRow), panelsPerRow, "panelsPerRow must be at least 1.");
        if (panels.Count == 0) throw new ArgumentException("A heatmap figure needs at least one panel.", nameof(panels));
        if (cellSize < 1) throw new ArgumentOutOfRangeException(nameof(cellSize), cellSize, "cellSize must be at least 1 pixel.");
        if (low is { } l && high is { } h && !(l <= h)) throw new ArgumentException($"The colour scale's low ({l}) is above its high ({h}).");
        (Panels, RowTitle, ColumnTitle, ValueTitle, Scale, Low, High, CellSize) =
            (panels.ToArray(), rowTitle, columnTitle, valueTitle, scale, low, high, cellSize);
        PanelsPerRow = panelsPerRow;
    }

    /// <summary>The colour range of a panel: its values (or all panels' when shared), widened to <see cref="Low"/> and <see cref="High"/>.</summary>
    public (double Low, double High) RangeOf(int panel)
    {
        var covered = Scale == ColourScale.Shared ? Panels : [Panels[panel]];
        double low = Math.Min(Low ?? double.PositiveInfinity, covered.Min(p => p.Min));
        double high = Math.Max(High ?? double.NegativeInfinity, covered.Max(p => p.Max));
        if (high > low) return (low, high);
        double pad = low == 0 ? 1 : Math.Abs(low) * 0.1;   // a constant panel: mid-scale colour, a readable bar
        return (low - pad, high + pad);
    }

    record struct Box(double X, double Y, double Width, double Height)
    {
        public double Right => X + Width;
        public double Bottom => Y + Height;
    }

    sealed record Layout(Box[] Images, Box[] Bars, double Width, double Height);

    /// <summary>
    /// A title of the figure (a panel's, an axis's, a colour bar's), placed as SVG places text: centred on
    /// (<paramref name="X"/>, <paramref name="Y"/>) along its line, with its baseline through that point;
    /// <paramref name="Rotate"/> turns it clockwise about it (-90 reads upwards, 90 downwards). The SVG and
    /// the plotly figure both draw these, so the two show the titles in the same places.
    /// </summary>
    readonly record struct Heading(double X, double Y, string Text, double Size, bool Bold = false, double Rotate = 0)
    {
        // The middle of the glyphs: a third of the font size or so from the baseline, towards the tops of the letters.
        public (double X, double Y) Centre => Rotate switch
        {
            90 => (X + 0.35 * Size, Y),
            -90 => (X - 0.35 * Size, Y),
            _ => (X, Y - 0.35 * Size),
        };
    }

    IEnumerable<Heading> Headings(Layout layout)
    {
        for (int p = 0; p < Panels.Count; p++)
        {
            var (panel, image) = (Panels[p], layout.Images[p]);
            yield return new Heading(image.X + image.Width / 2, image.Y - 10, panel.Title, TitleSize, Bold: true);
            var rowLabels = IndexTicks(panel.Rows).Values.Select(v => Ticks.Label(v, 1));
            yield return new Heading(image.X - 6 - LabelsWidth(rowLabels) - 8 - LabelSize / 2 + 4, image.Y + image.Height / 2, RowTitle, LabelSize, Rotate: -90);
            yield return new Heading(image.X + image.Width / 2, image.Bottom + 36, ColumnTitle, LabelSize);
            if (Scale == ColourScale.PerPanel || p == 0)
            {
                var bar = layout.Bars[p];
                // Turned clockwise, the title's letters reach from its baseline about 3/4 of the font size to the right, their descenders 1/4 to the left.
                yield return new Heading(bar.Right + 6 + BarLabelsWidth(p) + BarTitleGap + LabelSize / 4, bar.Y + bar.Height / 2, ValueTitle, LabelSize, Rotate: 90);
            }
        }
    }

    static (IReadOnlyList<double> Values, double Step) IndexTicks(int count)
    {
        var (_, step) = Ticks.Covering(0, Math.Max(1, count - 1));
        step = Math.Max(1, Math.Round(step));
        return (Enumerable.Range(0, count).Where(i => i % step == 0).Select(i => (double)i).ToList(), step);
    }

    static double LabelsWidth(IEnumerable<string> labels) => labels.Select(l => SvgCanvas.TextWidth(l, TickSize)).DefaultIfEmpty(0).Max();

    double BarLabelsWidth(int panel)
    {
        var (low, high) = RangeOf(panel);
        var (values, step) = Ticks.Within(low, high);
        return LabelsWidth(values.Select(v => Ticks.Label(v, step)));
    }

    // A colour bar with its tick labels and title, right of what it serves. The labels' widths are
    // estimated on the generous side, so the title keeps at least BarTitleGap from them.
    const double BarTitleGap = 6;
    double BarSlot(int panel) => 12 + BarWidth + 6 + BarLabelsWidth(panel) + BarTitleGap + LabelSize;

    Layout Arrange()
    {
        var images = new Box[Panels.Count];
        var bars = new Box[Panels.Count];
        double x = 0, y = 0, rowHeight = 0, width = 0;
        int inRow = 0;
        for (int p = 0; p < Panels.Count; p++)
        {
            var panel = Panels[p];
            double w = panel.Columns * CellSize, h = panel.Rows * CellSize;
            double left = 8 + LabelSize + 8 + LabelsWidth(IndexTicks(panel.Rows).Values.Select(v => Ticks.Label(v, 1))) + 6;
            double slotWidth = left + Math.Max(w, SvgCanvas.TextWidth(panel.Title, TitleSize)) + (Scale == ColourScale.PerPanel ? BarSlot(p) : 0) + Gap;
            double slotHeight = Above + Math.Max(h, Scale == ColourScale.PerPanel ? MinBarHeight : 0) + Below;
            if (x > 0 && (x + slotWidth > MaxWidth || inRow == PanelsPerRow)) { x = 0; y += rowHeight + RowGap; rowHeight = 0; inRow = 0; }
            inRow++;
            images[p] = new Box(x + left, y + Above, w, h);
            bars[p] = new Box(x + left + w + 12, y + Above, BarWidth, Math.Max(h, MinBarHeight));
            x += slotWidth;
            rowHeight = Math.Max(rowHeight, slotHeight);
            width = Math.Max(width, x);
        }
        double height = y + rowHeight;
        if (Scale == ColourScale.Shared)
        {
            // One bar right of the widest row, from the first panel's top to the last one's bottom.
            double top = images.Min(b => b.Y), bottom = Math.Max(images.Max(b => b.Bottom), top + MinBarHeight);
            var bar = new Box(images.Max(b => b.Right) + 12, top, BarWidth, bottom - top);
            Array.Fill(bars, bar);
            width = Math.Max(width, bar.Right + 6 + BarLabelsWidth(0) + BarTitleGap + LabelSize + Gap);
            height = Math.Max(height, bottom + 16);
        }
        return new Layout(images, bars, Math.Ceiling(width - Gap + 12), Math.Ceiling(height));
    }

    public override string ToSvg()
    {
        var layout = Arrange();
        var canvas = new SvgCanvas(layout.Width, layout.Height, string.Join("; ", Panels.Select(p => p.Title)));
        for (int p = 0; p < Panels.Count; p++)
        {
            var (panel, image) = (Panels[p], layout.Images[p]);
            var (low, high) = RangeOf(p);
            canvas.Png(image.X, image.Y, image.Width, image.Height, PngImage.HeatmapPixels(panel.Rows, panel.Columns, panel.Values, low, high, CellSize).Bytes);
            canvas.Rect(image.X, image.Y, image.Width, image.Height, "none", SvgCanvas.AxisColour);

            double labelsRight = image.X - 6;
            foreach (double row in IndexTicks(panel.Rows).Values)
            {
                double y = image.Y + (row + 0.5) * CellSize;
                canvas.Line(image.X - 4, y, image.X, y, SvgCanvas.AxisColour);
                canvas.Text(labelsRight, y + 4, Ticks.Label(row, 1), TickSize, anchor: "end");
            }
            foreach (double column in IndexTicks(panel.Columns).Values)
            {
                double x = image.X + (column + 0.5) * CellSize;
                canvas.Line(x, image.Bottom, x, image.Bottom + 4, SvgCanvas.AxisColour);
                canvas.Text(x, image.Bottom + 17, Ticks.Label(column, 1), TickSize);
            }

            if (Scale == ColourScale.PerPanel || p == 0) DrawBar(canvas, layout.Bars[p], low, high);
        }
        foreach (var heading in Headings(layout))
            canvas.Text(heading.X, heading.Y, heading.Text, heading.Size, bold: heading.Bold, rotate: heading.Rotate);
        return canvas.ToString();
    }

    static readonly Lazy<PngImage> ColourBar = new(() => PngImage.ColourBarPixels());

    void DrawBar(SvgCanvas canvas, Box bar, double low, double high)
    {
        canvas.Png(bar.X, bar.Y, bar.Width, bar.Height, ColourBar.Value.Bytes, pixelated: false);
        canvas.Rect(bar.X, bar.Y, bar.Width, bar.Height, "none", SvgCanvas.AxisColour);
        var (values, step) = Ticks.Within(low, high);
        foreach (double v in values)
        {
            double y = bar.Bottom - (v - low) / (high - low) * bar.Height;
            canvas.Line(bar.Right, y, bar.Right + 4, y, SvgCanvas.AxisColour);
            canvas.Text(bar.Right + 6, y + 4, Ticks.Label(v, step), TickSize, anchor: "start");
        }
    }

    // The five viridis anchors PngImage interpolates between, so both renderings show the same colours.
    static JsonArray PlotlyColourScale() => new(Enumerable.Range(0, 5).Select(i =>
    {
        var c = PngImage.Viridis(i / 4.0);
        return (JsonNode)new JsonArray(i / 4.0, $"rgb({c.Red},{c.Green},{c.Blue})");
    }).ToArray());

    /// <summary>
    /// The plotly.js figure: the panels at the places the SVG gives them, in paper coordinates (the
    /// SVG's pixels over its width and height) below a strip of <see cref="ModeBarRoom"/> for the mode
    /// bar. The titles are annotations at the SVG's places rather than plotly's axis and colour-bar
    /// titles, which plotly sets off by distances of its own (with no margins between the panels, a
    /// column title ran into the title of the panel below it, a colour bar's title into its tick labels).
    /// </summary>
    public override JsonObject ToPlotly()
    {
        var layout = Arrange();
        var data = new JsonArray();
        var plotlyLayout = new JsonObject
        {
            ["width"] = layout.Width,
            ["height"] = layout.Height + ModeBarRoom,
            ["font"] = new JsonObject { ["family"] = SvgCanvas.FontFamily, ["size"] = TickSize, ["color"] = SvgCanvas.Ink },
            ["margin"] = new JsonObject { ["l"] = 0, ["r"] = 0, ["t"] = ModeBarRoom, ["b"] = 0 },
        };
        double X(double x) => x / layout.Width;
        double Y(double y) => 1 - y / layout.Height;
        for (int p = 0; p < Panels.Count; p++)
        {
            var (panel, image, bar) = (Panels[p], layout.Images[p], layout.Bars[p]);
            var (low, high) = RangeOf(p);
            var (ticks, step) = Ticks.Within(low, high);
            string suffix = p == 0 ? "" : (p + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            data.Add(new JsonObject
            {
                ["type"] = "heatmap",
                ["name"] = panel.Title,
                ["z"] = new JsonArray(Enumerable.Range(0, panel.Rows).Select(r =>
                    (JsonNode)new JsonArray(Enumerable.Range(0, panel.Columns).Select(c => (JsonNode)(float)panel.Values[r * panel.Columns + c]).ToArray())).ToArray()),
                ["zmin"] = low,
                ["zmax"] = high,
                ["colorscale"] = PlotlyColourScale(),
                ["showscale"] = Scale == ColourScale.PerPanel || p == 0,
                // The bar exactly in its box (no padding), with the SVG's ticks; its title is an annotation.
                ["colorbar"] = new JsonObject
                {
                    ["x"] = X(bar.X), ["xanchor"] = "left", ["xpad"] = 0, ["thickness"] = BarWidth,
                    ["y"] = Y(bar.Bottom), ["yanchor"] = "bottom", ["ypad"] = 0, ["len"] = bar.Height / layout.Height, ["lenmode"] = "fraction",
                    ["outlinecolor"] = SvgCanvas.AxisColour, ["outlinewidth"] = 1,
                    ["tickmode"] = "array",
                    ["tickvals"] = new JsonArray(ticks.Select(v => (JsonNode)v).ToArray()),
                    ["ticktext"] = new JsonArray(ticks.Select(v => (JsonNode)Ticks.Label(v, step)).ToArray()),
                    ["ticks"] = "outside", ["ticklen"] = 4, ["tickcolor"] = SvgCanvas.AxisColour,
                },
                ["xaxis"] = "x" + suffix,
                ["yaxis"] = "y" + suffix,
                ["hovertemplate"] = $"{RowTitle} %{{y}}<br>{ColumnTitle} %{{x}}<br>{ValueTitle} %{{z}}<extra>{panel.Title}</extra>",
            });
            plotlyLayout["xaxis" + suffix] = new JsonObject
            {
                ["domain"] = new JsonArray(X(image.X), X(image.Right)),
                ["anchor"] = "y" + suffix,
                ["ticks"] = "outside", ["ticklen"] = 4, ["tickcolor"] = SvgCanvas.AxisColour,
            };
            plotlyLayout["yaxis" + suffix] = new JsonObject
            {
                ["domain"] = new JsonArray(Y(image.Bottom), Y(image.Y)),
                ["anchor"] = "x" + suffix,
                ["autorange"] = "reversed",
                ["ticks"] = "outside", ["ticklen"] = 4, ["tickcolor"] = SvgCanvas.AxisColour,
            };
        }
        plotlyLayout["annotations"] = new JsonArray(Headings(layout).Select(heading =>
        {
            var (x, y) = heading.Centre;
            var font = new JsonObject { ["size"] = heading.Size };
            if (heading.Bold) font["weight"] = "bold";
            return (JsonNode)new JsonObject
            {
                ["text"] = heading.Text, ["showarrow"] = false, ["xref"] = "paper", ["yref"] = "paper",
                ["x"] = X(x), ["y"] = Y(y), ["xanchor"] = "center", ["yanchor"] = "middle",
                ["textangle"] = heading.Rotate, ["font"] = font,
            };
        }).ToArray());
        return new JsonObject { ["data"] = data, ["layout"] = plotlyLayout };
    }

    public override string ToString() =>
        $"Heatmap figure ({RowTitle} x {ColumnTitle}, colour: {ValueTitle}): " +
        string.Join(", ", Panels.Select((p, i) => $"{p.Title} {p.Rows}x{p.Columns} [{Ticks.Label(RangeOf(i).Low, 0.001)}, {Ticks.Label(RangeOf(i).High, 0.001)}]"));
}
