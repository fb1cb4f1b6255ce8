using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using DualLora.IO;
using Markdig;

namespace DualLora.Cli.Notebooks;

/// <summary>
/// An executed notebook as one self-contained HTML page: markdown rendered with Markdig, code in
/// preformatted blocks, and outputs as the notebook stores them (HTML as is, PNG inline, text escaped).
/// </summary>
public static class NotebookHtml
{
    static readonly MarkdownPipeline Markdown = new MarkdownPipelineBuilder().UseAdvancedExtensions().Build();

    const string Style = """
        body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #1f2328; }
        pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; border-radius: 6px; }
        .cell { margin: 1rem 0; }
        .prompt { color: #57606a; font-family: monospace; font-size: .85rem; }
        .output { margin: .5rem 0 .5rem 1.5rem; overflow-x: auto; }
        .output pre { background: #fff; border-left: 3px solid #d0d7de; }
        .stderr pre { border-left-color: #cf222e; }
        table { border-collapse: collapse; } td, th { border: 1px solid #d0d7de; padding: .2rem .5rem; }
        """;

    public static void Write(NotebookDocument notebook, string path)
    {
        var page = new StringBuilder();
        string title = WebUtility.HtmlEncode(Path.GetFileNameWithoutExtension(notebook.Path));
        page.Append($"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n{Style}\n</style>\n</head>\n<body>\n");
        foreach (var cell in notebook.Cells)
        {
            page.Append("<div class=\"cell\">\n");
            switch (cell.Kind)
            {
                case "markdown":
                    page.Append(Markdig.Markdown.ToHtml(cell.Source, Markdown));
                    break;
                case "raw":
                    page.Append($"<pre>{WebUtility.HtmlEncode(cell.Source)}</pre>\n");
                    break;
                default:
                    string count = cell.Json["execution_count"]?.ToString() ?? " ";
                    page.Append($"<div class=\"prompt\">In [{count}]:</div>\n<pre><code class=\"language-csharp\">{WebUtility.HtmlEncode(cell.Source)}</code></pre>\n");
                    foreach (var output in cell.Outputs.OfType<JsonObject>()) page.Append(Output(output));
                    break;
            }
            page.Append("</div>\n");
        }
        page.Append("</body>\n</html>\n");
        AtomicFile.WriteAllText(path, page.ToString());
    }

    static string Output(JsonObject output)
    {
        static string Text(JsonNode? node) => node switch
        {
            JsonArray lines => string.Concat(lines.Select(l => l!.GetValue<string>())),
            JsonValue value => value.GetValue<string>(),
            _ => "",
        };
        if (output["output_type"]?.GetValue<string>() == "stream")
        {
            string stream = output["name"]?.GetValue<string>() ?? "stdout";
            return $"<div class=\"output {stream}\"><pre>{WebUtility.HtmlEncode(Text(output["text"]))}</pre></div>\n";
        }
        var data = output["data"] as JsonObject ?? new JsonObject();
        string body = data["image/png"] is { } png ? $"<img src=\"data:image/png;base64,{Text(png)}\"/>"
            : data["text/html"] is { } html ? Text(html)
            : $"<pre>{WebUtility.HtmlEncode(Text(data["text/plain"]))}</pre>";
        return $"<div class=\"output\">{body}</div>\n";
    }
}
