using System.Net;
using System.Text;

namespace DualLora.Cli.Site;

/// <summary>The HTML of the site's pages: the index and one page per chapter, in one frame with previous/next links.</summary>
static class SitePages
{
    public const string SiteTitle = "DualLora.Notebooks";
    public const string IndexPage = "index.html";

    /// <summary>A link in the previous/next bar: the page, what it is called, and the HTML of its title.</summary>
    public sealed record Neighbour(string Page, string Label, string TitleHtml);

    public static string Index(IReadOnlyList<Chapter> chapters)
    {
        var body = new StringBuilder();
        body.Append($"<h1>{SiteTitle}</h1>\n");
        body.Append("<p>The notebooks on Dual-LoRA and Visual Cue Enhancement (VCE), executed, in reading order. ");
        body.Append("Each chapter states the question it answers; the picture beside it is its first figure.</p>\n");
        body.Append("<ol class=\"chapters\">\n");
        foreach (var chapter in chapters)
        {
            body.Append($"<li class=\"chapter\">\n<div>\n<h2><a href=\"{chapter.Page}\">{chapter.TitleHtml}</a></h2>\n{chapter.QuestionHtml}</div>\n");
            body.Append(chapter.KeyFigure is { } figure
                ? $"<a class=\"chapter-figure\" href=\"{chapter.Page}#{figure.Anchor}\"><img src=\"{figure.RelativePath}\" alt=\"first figure of {WebUtility.HtmlEncode(chapter.Name)}\"></a>\n"
                : "<div class=\"chapter-figure none\">no figure</div>\n");
            body.Append("</li>\n");
        }
        body.Append("</ol>\n");
        var next = chapters.Count > 0 ? new Neighbour(chapters[0].Page, "first chapter", chapters[0].TitleHtml) : null;
        return Frame(SiteTitle, body.ToString(), previous: null, next, charts: false);
    }

    public static string ChapterPage(Chapter chapter, Neighbour previous, Neighbour next) =>
        Frame($"{chapter.Title} · {SiteTitle}", chapter.BodyHtml, previous, next, chapter.HasCharts);

    static string Frame(string title, string body, Neighbour? previous, Neighbour? next, bool charts)
    {
        string navigation = Navigation(previous, next);
        // plotly.js is one file for the whole site, loaded only by the pages that draw charts.
        string plotly = charts ? $"<script defer src=\"{SiteAssets.PlotlyJs}\"></script>\n" : "";
        return $"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{WebUtility.HtmlEncode(title)}</title>
            <link rel="stylesheet" href="{SiteAssets.KatexCss}">
            <link rel="stylesheet" href="{SiteAssets.SiteCss}">
            <script defer src="{SiteAssets.KatexJs}"></script>
            {plotly}<script defer src="{SiteAssets.SiteJs}"></script>
            </head>
            <body>
            <header class="site-header"><a href="{IndexPage}">{SiteTitle}</a></header>
            {navigation}
            <main>
            {body}
            </main>
            {navigation}
            </body>
            </html>

            """;
    }

    static string Navigation(Neighbour? previous, Neighbour? next)
    {
        var links = new StringBuilder("<nav class=\"chapter-nav\">");
        if (previous is not null)
            links.Append($"<a class=\"previous\" href=\"{previous.Page}\"><span class=\"label\">← {previous.Label}</span>{previous.TitleHtml}</a>");
        if (next is not null)
            links.Append($"<a class=\"next\" href=\"{next.Page}\"><span class=\"label\">{next.Label} →</span>{next.TitleHtml}</a>");
        return links.Append("</nav>").ToString();
    }
}
