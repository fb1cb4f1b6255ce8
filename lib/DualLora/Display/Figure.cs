using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DualLora.Display;

/// <summary>
/// A figure of the library's own, shown by the notebook formatter (see <see cref="Formatters"/>) as
/// text/html:
/// <code>
/// &lt;figure class="duallora-chart"&gt;
///   &lt;svg&gt;the static figure&lt;/svg&gt;
///   &lt;script type="application/json" class="duallora-plotly"&gt;{"data": [...], "layout": {...}}&lt;/script&gt;
///   &lt;figcaption&gt;the caption, if any&lt;/figcaption&gt;
/// &lt;/figure&gt;
/// </code>
/// The SVG is what VS Code (offline), GitHub and any reader see, so it is a complete figure on its own;
/// the JSON is the same data as a plain plotly.js figure, which the documentation site draws
/// interactively in the SVG's place. No script runs in the notebook, and nothing depends on plotly.js
/// or on an F# runtime, so the library loads beside whatever the notebook kernel carries.
/// </summary>
public abstract record Figure
{
    /// <summary>The class of the figure element, and of the script that holds its plotly.js figure: the documentation site looks for both.</summary>
    public const string FigureClass = "duallora-chart", PlotlyClass = "duallora-plotly";

    /// <summary>What is drawn, in a sentence or two; shown under the figure. Set it with <c>chart with { Caption = "..." }</c>.</summary>
    public string? Caption { get; init; }

    /// <summary>The static figure.</summary>
    public abstract string ToSvg();

    /// <summary>The plotly.js figure, <c>{"data": [...], "layout": {...}}</c>.</summary>
    public abstract JsonObject ToPlotly();

    static readonly JsonSerializerOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// The plotly.js figure as JSON that is safe inside a script element: every '&lt;' is written as
    /// \u003C, so no string in it (a title, a name) can close the script or open a comment.
    /// </summary>
    public string ToPlotlyJson() => ToPlotly().ToJsonString(JsonOptions).Replace("<", "\\u003C");

    public string ToHtml()
    {
        string caption = Caption is null ? "" : $"\n<figcaption>{SvgCanvas.Escape(Caption)}</figcaption>";
        return $"<figure class=\"{FigureClass}\">\n{ToSvg()}\n<script type=\"application/json\" class=\"{PlotlyClass}\">{ToPlotlyJson()}</script>{caption}\n</figure>";
    }

    // Tableau 10: distinct colours, also for readers with the common colour-vision deficiencies.
    internal static readonly string[] Palette =
        ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    internal static JsonObject PlotlyTitle(string text) => new() { ["text"] = text };
}
