using System.Text.Json.Nodes;
using DualLora.Cli.Notebooks;

namespace DualLora.Tests.Site;

/// <summary>Executed notebooks written by hand: markdown cells, and code cells with the outputs a run would store.</summary>
static class TestNotebook
{
    public static (string Kind, string Source, JsonObject[] Outputs, JsonNode? Tags) Markdown(string source) => ("markdown", source, [], null);
    public static (string Kind, string Source, JsonObject[] Outputs, JsonNode? Tags) Code(string source, params JsonObject[] outputs) => ("code", source, outputs, null);
    /// <summary>A code cell whose <c>metadata.tags</c> is <paramref name="tags"/> (a list of strings in a valid notebook).</summary>
    public static (string Kind, string Source, JsonObject[] Outputs, JsonNode? Tags) Tagged(JsonNode tags, string source, params JsonObject[] outputs) => ("code", source, outputs, tags);

    public static JsonObject Html(string html) => Display(new JsonObject { ["text/html"] = NotebookDocument.Lines(html), ["text/plain"] = "html" });
    public static JsonObject Png(byte[] png) => Display(new JsonObject { ["image/png"] = Convert.ToBase64String(png), ["text/plain"] = "PNG image" });
    public static JsonObject Stdout(string text) => new() { ["output_type"] = "stream", ["name"] = "stdout", ["text"] = NotebookDocument.Lines(text) };

    static JsonObject Display(JsonObject data) => new() { ["output_type"] = "display_data", ["data"] = data, ["metadata"] = new JsonObject() };

    public static string Write(string folder, string name, params (string Kind, string Source, JsonObject[] Outputs, JsonNode? Tags)[] cells)
    {
        int count = 0;
        var json = new JsonObject
        {
            ["cells"] = new JsonArray(cells.Select(c => (JsonNode)(c.Kind == "code"
                ? new JsonObject
                {
                    ["cell_type"] = "code", ["metadata"] = c.Tags is null ? new JsonObject() : new JsonObject { ["tags"] = c.Tags.DeepClone() }, ["source"] = NotebookDocument.Lines(c.Source),
                    ["execution_count"] = ++count, ["outputs"] = new JsonArray(c.Outputs.Select(o => (JsonNode)o.DeepClone()).ToArray()),
                }
                : new JsonObject { ["cell_type"] = c.Kind, ["metadata"] = new JsonObject(), ["source"] = NotebookDocument.Lines(c.Source) })).ToArray()),
            ["metadata"] = new JsonObject { ["kernelspec"] = new JsonObject { ["name"] = ".net-csharp", ["display_name"] = ".NET (C#)", ["language"] = "C#" } },
            ["nbformat"] = 4, ["nbformat_minor"] = 4,
        };
        string path = Path.Combine(folder, name + ".ipynb");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    /// <summary>A chart in the form the library's charts take: static SVG, plotly figure as JSON, caption.</summary>
    public static string Chart(string caption, string plotlyJson) =>
        "<figure class=\"duallora-chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" height=\"160\" viewBox=\"0 0 320 160\">"
        + "<rect width=\"320\" height=\"160\" fill=\"#fff\"/><polyline points=\"10,150 110,60 210,90 310,10\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/></svg>"
        + $"<script type=\"application/json\" class=\"duallora-plotly\">{plotlyJson}</script><figcaption>{caption}</figcaption></figure>";

    public const string ChartJson = """{"data":[{"type":"scatter","x":[1,2,3,4],"y":[1,3,2,4],"mode":"lines+markers","name":"loss"}],"layout":{"title":{"text":"A hand-made chart"},"xaxis":{"title":{"text":"step"}}}}""";

    /// <summary>A 2 x 2 PNG (grey and white pixels), as SkiaSharp would encode a tiny heatmap.</summary>
    public static byte[] TinyPng()
    {
        using var bitmap = new SkiaSharp.SKBitmap(2, 2);
        bitmap.SetPixel(0, 0, SkiaSharp.SKColors.Gray);
        bitmap.SetPixel(1, 1, SkiaSharp.SKColors.White);
        using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>The project root (where notebooks/ and site/ are), found above the test assembly.</summary>
    public static string ProjectRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "site", "package.json")) && Directory.Exists(Path.Combine(folder.FullName, "notebooks")))
                return folder.FullName;
        throw new DirectoryNotFoundException($"no project root above {AppContext.BaseDirectory}");
    }
}
