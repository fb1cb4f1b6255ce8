using System.Security.Cryptography;
using System.Text;
using Plotly.NET;

namespace DualLora.Display;

/// <summary>
/// Renders a Plotly.NET chart as HTML that works offline: plotly.js comes from the copy embedded in
/// Plotly.NET's assembly rather than a CDN. It is written into the first chart of a session only
/// (about 3.5 MB), and every chart draws once <c>window.Plotly</c> exists, so a page or a notebook
/// carries plotly.js once however many charts it shows. A session starts when a notebook registers
/// the formatters, so notebooks run one after another in one process each carry their own copy.
/// </summary>
public static class PlotlyHtml
{
    static readonly Lazy<string> PlotlyJs = new(() =>
    {
        var assembly = typeof(GenericChart).Assembly;
        string name = assembly.GetManifestResourceNames().Single(n => n.StartsWith("Plotly.NET.plotly-", StringComparison.Ordinal) && n.EndsWith(".min.js", StringComparison.Ordinal));
        using var reader = new StreamReader(assembly.GetManifestResourceStream(name)!);
        return reader.ReadToEnd();
    });

    static int chartsRendered;

    /// <summary>Starts a new page: the next chart carries plotly.js again. <see cref="Formatters.Register"/> calls it.</summary>
    public static void StartSession() => Interlocked.Exchange(ref chartsRendered, 0);

    /// <summary>The plotly.js version embedded in Plotly.NET (read from its resource name).</summary>
    public static string PlotlyJsVersion => typeof(GenericChart).Assembly.GetManifestResourceNames()
        .Single(n => n.EndsWith(".min.js", StringComparison.Ordinal))["Plotly.NET.plotly-".Length..^".min.js".Length];

    public static string Render(GenericChart chart)
    {
        string figure = GenericChart.toFigureJson(chart);
        int number = Interlocked.Increment(ref chartsRendered);
        // The id depends only on the figure and its place in the session, so re-running a notebook
        // reproduces its outputs byte for byte.
        string id = $"plotly-{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(figure)))[..12].ToLowerInvariant()}-{number}";
        string library = number == 1 ? $"<script type=\"text/javascript\">{PlotlyJs.Value}</script>\n" : "";
        return $$"""
            {{library}}<div id="{{id}}"></div>
            <script type="text/javascript">
            (function draw() {
              if (!window.Plotly) { setTimeout(draw, 50); return; }
              var figure = {{figure}};
              Plotly.newPlot("{{id}}", figure.data, figure.layout, {responsive: true});
            })();
            </script>
            """;
    }
}
