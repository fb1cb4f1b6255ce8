using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DualLora.Cli.Notebooks;

namespace DualLora.Cli.Site;

/// <summary>A file the site writes beside its pages, by its path relative to the site folder.</summary>
sealed record SiteFile(string RelativePath, byte[] Bytes);

/// <summary>The picture the index shows for a chapter: a file of the site and the anchor of the cell it comes from.</summary>
sealed record KeyFigure(string RelativePath, string Anchor);

/// <summary>
/// One executed notebook as a chapter of the site: title and question (from the first markdown cell),
/// key figure (the first chart or image among the outputs of the first cell tagged <see cref="KeyFigureTag"/>
/// in its Jupyter metadata, else of the whole notebook), the rendered cells, and the figure files.
/// </summary>
sealed partial class Chapter
{
    public required string Name { get; init; }
    public string Page => Name + ".html";
    public required string Title { get; init; }
    public required string TitleHtml { get; init; }
    public required string QuestionHtml { get; init; }
    public required string BodyHtml { get; init; }
    public required KeyFigure? KeyFigure { get; init; }
    public required bool HasCharts { get; init; }
    public required IReadOnlyList<SiteFile> Files { get; init; }

    /// <summary>The cell tag (<c>metadata.tags</c>, as Jupyter and VS Code edit it) that chooses the cell whose figure is the chapter's key figure.</summary>
    public const string KeyFigureTag = "key-figure";

    public static Chapter Read(string notebookPath)
    {
        var notebook = NotebookDocument.Load(notebookPath);
        string name = Path.GetFileNameWithoutExtension(notebook.Path);
        var renderer = new CellRenderer(notebook.Path, name);
        var body = new StringBuilder();
        foreach (var cell in notebook.Cells) body.Append(renderer.Cell(cell));

        var introCell = notebook.Cells.FirstOrDefault(c => c.Kind == "markdown");
        string intro = introCell?.Source ?? "";
        var paragraphs = BlankLine().Split(intro.Trim()).Select(p => p.Trim()).Where(p => p.Length > 0).ToList();
        string title = paragraphs.FirstOrDefault(p => p.StartsWith("# ", StringComparison.Ordinal))?[2..].Trim() ?? name;
        // The notebooks state their question in a paragraph that opens with "**Question.**".
        string question = paragraphs.FirstOrDefault(p => p.StartsWith("**Question.**", StringComparison.Ordinal))
            ?? paragraphs.FirstOrDefault(p => !p.StartsWith('#')) ?? "";
        return new Chapter
        {
            Name = name,
            Title = title,
            TitleHtml = renderer.Markdown(introCell?.Number ?? 0, title, inline: true),
            QuestionHtml = renderer.Markdown(introCell?.Number ?? 0, question, inline: false),
            BodyHtml = body.ToString(),
            KeyFigure = renderer.KeyFigure,
            HasCharts = renderer.HasCharts,
            Files = renderer.Files,
        };
    }

    [GeneratedRegex(@"\n[ \t]*\n")]
    private static partial Regex BlankLine();

    [GeneratedRegex(@"<figure\b[^>]*\bclass=""[^""]*\bduallora-chart\b[^""]*""[^>]*>.*?(<svg\b.*?</svg>)", RegexOptions.Singleline)]
    private static partial Regex ChartWithStaticSvg();

    sealed class CellRenderer(string notebookPath, string name)
    {
        public List<SiteFile> Files { get; } = [];
        public KeyFigure? KeyFigure { get; private set; }
        public bool HasCharts { get; private set; }
        bool keyFigureTagged;
        SiteFile? keyFigureOnlyFile;

        public string Markdown(int cellNumber, string source, bool inline)
        {
            string html;
            try
            {
                html = MathMarkdown.ToHtml(source);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"{notebookPath}: cell {cellNumber}: {e.Message}");
            }
            return inline ? html.Trim().RemovePrefix("<p>").RemoveSuffix("</p>") : html;
        }

        public string Cell(NotebookCell cell)
        {
            string id = $"cell-{cell.Number}";
            switch (cell.Kind)
            {
                case "markdown":
                    return $"<section class=\"cell markdown\" id=\"{id}\">\n{Markdown(cell.Number, cell.Source, inline: false)}</section>\n";
                case "raw":
                    return $"<section class=\"cell raw\" id=\"{id}\"><pre>{WebUtility.HtmlEncode(cell.Source)}</pre></section>\n";
                default:
                    var page = new StringBuilder();
                    string count = cell.Json["execution_count"]?.ToString() ?? " ";
                    page.Append($"<section class=\"cell code\" id=\"{id}\">\n<div class=\"prompt\">In [{count}]:</div>\n");
                    page.Append($"<pre class=\"source\"><code class=\"language-csharp\">{WebUtility.HtmlEncode(cell.Source)}</code></pre>\n");
                    var outputs = cell.Outputs.OfType<JsonObject>().ToList();
                    bool tagged = Tags(cell).Contains(KeyFigureTag);
                    if (outputs.Count > 0)
                    {
                        page.Append("<div class=\"outputs\">\n");
                        for (int i = 0; i < outputs.Count; i++) page.Append(Output(outputs[i], cell.Number, i + 1, tagged));
                        page.Append("</div>\n");
                    }
                    page.Append("</section>\n");
                    return page.ToString();
            }
        }

        IReadOnlyList<string> Tags(NotebookCell cell)
        {
            var tags = cell.Json["metadata"]?["tags"];
            if (tags is null) return [];
            if (tags is JsonArray list && list.All(tag => tag is JsonValue value && value.TryGetValue<string>(out _)))
                return list.Select(tag => tag!.GetValue<string>()).ToList();
            throw new InvalidDataException($"{notebookPath}: cell {cell.Number}: metadata.tags must be a list of strings, not {tags.ToJsonString()}.");
        }

        // The first figure of the notebook, unless a tagged cell's first figure comes later.
        bool WantsKeyFigure(bool tagged) => KeyFigure is null || (tagged && !keyFigureTagged);

        void TakeKeyFigure(KeyFigure figure, bool tagged, SiteFile? onlyForKeyFigure = null)
        {
            if (keyFigureOnlyFile is not null) Files.Remove(keyFigureOnlyFile);
            KeyFigure = figure;
            keyFigureTagged |= tagged;
            keyFigureOnlyFile = onlyForKeyFigure;
        }

        string Output(JsonObject output, int cellNumber, int outputNumber, bool tagged)
        {
            string type = output["output_type"]?.GetValue<string>() ?? "";
            if (type == "stream")
            {
                string stream = output["name"]?.GetValue<string>() == "stderr" ? "stderr" : "stdout";
                return $"<div class=\"output {stream}\"><pre>{WebUtility.HtmlEncode(Text(output["text"]))}</pre></div>\n";
            }
            if (type == "error")
            {
                string traceback = output["traceback"] is JsonArray lines ? string.Join("\n", lines.Select(l => l?.GetValue<string>())) : "";
                string message = $"{Text(output["ename"])}: {Text(output["evalue"])}\n{traceback}".TrimEnd();
                return $"<div class=\"output error\"><pre>{WebUtility.HtmlEncode(message)}</pre></div>\n";
            }
            var data = output["data"] as JsonObject ?? [];
            string anchor = $"cell-{cellNumber}";
            if (data["image/png"] is { } png)
            {
                string file = $"figures/{name}-{cellNumber}-{outputNumber}.png";
                Files.Add(new SiteFile(file, DecodePng(Text(png), cellNumber)));
                if (WantsKeyFigure(tagged)) TakeKeyFigure(new KeyFigure(file, anchor), tagged);
                return $"<div class=\"output\"><img src=\"{file}\" alt=\"{WebUtility.HtmlEncode(Text(data["text/plain"]))}\"></div>\n";
            }
            if (data["text/html"] is { } htmlNode)
            {
                string html = Text(htmlNode);
                HasCharts |= html.Contains("duallora-chart", StringComparison.Ordinal);
                if (WantsKeyFigure(tagged) && ChartWithStaticSvg().Match(html) is { Success: true } chart)
                {
                    var svg = new SiteFile($"figures/{name}-{cellNumber}-{outputNumber}.svg", Encoding.UTF8.GetBytes(StandaloneSvg(chart.Groups[1].Value)));
                    Files.Add(svg);
                    TakeKeyFigure(new KeyFigure(svg.RelativePath, anchor), tagged, onlyForKeyFigure: svg);
                }
                return $"<div class=\"output\">{html}</div>\n";
            }
            return $"<div class=\"output\"><pre>{WebUtility.HtmlEncode(Text(data["text/plain"]))}</pre></div>\n";
        }

        byte[] DecodePng(string base64, int cellNumber)
        {
            try
            {
                return Convert.FromBase64String(base64);
            }
            catch (FormatException)
            {
                throw new InvalidDataException($"{notebookPath}: cell {cellNumber}: an image/png output is not valid base64.");
            }
        }

        // An SVG inlined in HTML may omit its namespace; as a file of its own it needs it.
        static string StandaloneSvg(string svg) => svg.Contains("xmlns=\"http://www.w3.org/2000/svg\"", StringComparison.Ordinal)
            ? svg : "<svg xmlns=\"http://www.w3.org/2000/svg\"" + svg[4..];

        static string Text(JsonNode? node) => node switch
        {
            JsonArray lines => string.Concat(lines.Select(l => l?.GetValue<string>())),
            JsonValue value => value.ToString(),
            _ => "",
        };
    }
}

static class StringAffixes
{
    public static string RemovePrefix(this string text, string prefix) => text.StartsWith(prefix, StringComparison.Ordinal) ? text[prefix.Length..] : text;
    public static string RemoveSuffix(this string text, string suffix) => text.EndsWith(suffix, StringComparison.Ordinal) ? text[..^suffix.Length] : text;
}
