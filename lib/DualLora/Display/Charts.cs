using DualLora.Training;
using TorchSharp;

namespace DualLora.Display;

/// <summary>The figures notebooks draw from numbers: line charts, training curves and heatmaps.</summary>
public static class Charts
{
    /// <summary>Lines with markers, one per series, with a legend when there are several.</summary>
    public static LineChart Lines(string title, string xTitle, string yTitle, params Series[] series) =>
        new(title, xTitle, yTitle, series);

    /// <summary>
    /// Grouped bars: one group per category, one bar per series in it, whiskers of ± each series' errors (when given).
    /// Set <c>Reference</c> (with <c>ReferenceName</c>) to mark a value per category, such as a chance level.
    /// </summary>
    public static BarChart Bars(string title, string xTitle, string yTitle, IReadOnlyList<string> categories, params BarSeries[] series) =>
        new(title, xTitle, yTitle, categories, series);

    /// <summary>
    /// The loss per optimizer step of one or more runs, one line each. With <paramref name="smoothing"/> above 1
    /// each point is the mean of the last that many steps (fewer at the start), so a noisy curve shows its trend.
    /// </summary>
    public static LineChart TrainingCurves(IReadOnlyList<TrainingRun> runs, int smoothing = 1, string title = "Training loss")
    {
        if (smoothing < 1) throw new ArgumentOutOfRangeException(nameof(smoothing), smoothing, "smoothing is a number of steps, at least 1.");
        var series = runs.Select(run => new Series(run.Name,
            run.Losses.Select(l => (double)l.Step).ToList(), TrailingMean(run.Losses.Select(l => l.Loss).ToList(), smoothing))).ToArray();
        return new LineChart(title, "optimizer step", smoothing == 1 ? "loss" : $"loss (mean of the last {smoothing} steps)", series);
    }

    /// <summary>The loss per step of one trainer's history (<c>Trainer.History</c>).</summary>
    public static LineChart TrainingCurves(IReadOnlyList<TrainingProgress> history, int smoothing = 1, string title = "Training loss") =>
        TrainingCurves([TrainingRun.From(history)], smoothing, title);

    static double[] TrailingMean(IReadOnlyList<double> values, int window)
    {
        var means = new double[values.Count];
        double sum = 0;
        for (int i = 0; i < values.Count; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            means[i] = sum / Math.Min(i + 1, window);
        }
        return means;
    }

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
