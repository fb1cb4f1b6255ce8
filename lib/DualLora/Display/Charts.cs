using Plotly.NET;

namespace DualLora.Display;

/// <summary>One named line of a chart.</summary>
public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>
/// Plotly.NET charts built from C#. Plotly.NET's chart functions take dozens of F# options, and its C#
/// wrapper needs .NET 10, which the notebook kernel does not run; so the traces and layout are set as
/// Plotly.NET's own dynamic objects, which is what those functions build underneath.
/// </summary>
public static class Charts
{
    public static GenericChart Lines(string title, string xTitle, string yTitle, params Series[] series)
    {
        if (series.Length == 0) throw new ArgumentException("A chart needs at least one series.", nameof(series));
        var traces = series.Select(s =>
        {
            if (s.X.Count != s.Y.Count) throw new ArgumentException($"Series '{s.Name}' has {s.X.Count} x values and {s.Y.Count} y values.");
            var trace = new Trace2D("scatter");
            trace.SetProperty("x", s.X.ToArray());
            trace.SetProperty("y", s.Y.ToArray());
            trace.SetProperty("mode", "lines+markers");
            trace.SetProperty("name", s.Name);
            return GenericChart.ofTraceObject(true, trace);
        });
        var layout = new Layout();
        layout.SetProperty("title", new Dictionary<string, object> { ["text"] = title });
        layout.SetProperty("xaxis", new Dictionary<string, object> { ["title"] = new Dictionary<string, object> { ["text"] = xTitle } });
        layout.SetProperty("yaxis", new Dictionary<string, object> { ["title"] = new Dictionary<string, object> { ["text"] = yTitle } });
        layout.SetProperty("width", 720);
        layout.SetProperty("height", 420);
        return GenericChart.addLayout(layout, GenericChart.combine(traces));
    }
}
