using TorchSharp;

namespace DualLora.Display;

/// <summary>The figures notebooks draw from numbers: line charts and heatmaps.</summary>
public static class Charts
{
    /// <summary>Lines with markers, one per series, with a legend when there are several.</summary>
    public static LineChart Lines(string title, string xTitle, string yTitle, params Series[] series) =>
        new(title, xTitle, yTitle, series);

    /// <summary>
    /// One heatmap of a 2-D tensor: rows down, columns across (indices from 0), a colour bar titled
    /// <paramref name="valueTitle"/>. <paramref name="low"/> and <paramref name="high"/> widen the colour
    /// scale (e.g. to start at 0); it always covers every value.
    /// </summary>
    public static HeatmapFigure Heatmap(string title, torch.Tensor values, string rowTitle, string columnTitle, string valueTitle,
        double? low = null, double? high = null, int cellSize = 8) =>
        new([new HeatmapPanel(title, values)], rowTitle, columnTitle, valueTitle, ColourScale.Shared, low, high, cellSize);

    /// <summary>Several heatmaps with the same axes side by side, on one colour scale or one each (see <see cref="HeatmapFigure"/>).</summary>
    public static HeatmapFigure Heatmaps(IReadOnlyList<HeatmapPanel> panels, string rowTitle, string columnTitle, string valueTitle,
        ColourScale scale = ColourScale.Shared, double? low = null, double? high = null, int cellSize = 8, int? panelsPerRow = null) =>
        new(panels, rowTitle, columnTitle, valueTitle, scale, low, high, cellSize, panelsPerRow);
}
