using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DualLora.Cli.Site;
using static DualLora.Tests.Site.TestNotebook;

namespace DualLora.Tests.Site;

public class SiteBuilderTests
{
    // The three places of the committed notebooks that Markdig's generic attributes garbled.
    const string ScalingHeading = "## 4. The scaling: $\\alpha/r$ or $\\alpha/\\sqrt{r}$";
    const string AbsoluteEntry = "What the approximations look like (same colour scale, $|$entry$|$; left to right: $\\Delta W$, then ranks 1, 4, 16):";
    const string VceEquation = "$$f^* = W_\\text{out}\\, \\Big\\Vert_h \\sum_{\\ell, k} a_{h\\ell k}\\, v_{\\ell}^{(h)}\\big(p + \\Delta p_{h\\ell k} / (W, H)\\big), \\qquad x = \\text{anchor} + f^*$$";

    static string Inline(string tex) => $"<span class=\"math\">{tex}</span>";

    [Fact]
    public void Math_reaches_KaTeX_untouched_by_the_markdown_step()
    {
        string heading = MathMarkdown.ToHtml(ScalingHeading);
        Assert.Equal($"<h2 id=\"4-the-scaling--or-\">4. The scaling: {Inline("\\alpha/r")} or {Inline("\\alpha/\\sqrt{r}")}</h2>", heading.Trim());

        string entry = MathMarkdown.ToHtml(AbsoluteEntry);
        Assert.Contains($"colour scale, {Inline("|")}entry{Inline("|")}; left to right: {Inline("\\Delta W")}, then", entry);

        string equation = MathMarkdown.ToHtml(VceEquation + "\n\nwith $p$ the patch's centre");
        Assert.Contains("<span class=\"math display\">f^* = W_\\text{out}\\, \\Big\\Vert_h \\sum_{\\ell, k} a_{h\\ell k}\\, v_{\\ell}^{(h)}\\big(p + \\Delta p_{h\\ell k} / (W, H)\\big), \\qquad x = \\text{anchor} + f^*</span>", equation);
    }

    [Fact]
    public void Display_math_may_span_lines_and_is_HTML_escaped()
    {
        string html = MathMarkdown.ToHtml("$$a < b, \\quad\nc_{1} > d$$");
        Assert.Contains("<span class=\"math display\">a &lt; b, \\quad\nc_{1} &gt; d</span>", html);
    }

    [Theory]
    [InlineData("It costs $5 and $6.", "It costs $5 and $6.")]
    [InlineData("Code: `$x$` stays.", "Code: <code>$x$</code> stays.")]
    [InlineData("An escaped \\$x\\$ stays.", "An escaped $x$ stays.")]
    [InlineData("A lone $ sign", "A lone $ sign")]
    public void Dollars_that_are_not_math_stay_text(string markdown, string expected) =>
        Assert.Equal($"<p>{expected}</p>", MathMarkdown.ToHtml(markdown).Trim());

    [Fact]
    public void Fenced_code_keeps_its_dollars()
    {
        string html = MathMarkdown.ToHtml("```csharp\nvar s = $\"{x}\" + $\"{y}\";\n```\n\nthen $z$");
        Assert.Contains("var s = $&quot;{x}&quot; + $&quot;{y}&quot;;", html);
        Assert.Contains(Inline("z"), html);
    }

    [Fact]
    public void The_committed_notebooks_equations_come_out_as_math()
    {
        string root = ProjectRoot();
        using var temp = new TempFolder();
        string site = Path.Combine(temp.Path, "site");
        SiteBuilder.Build([Path.Combine(root, "notebooks", "01-low-rank-subspaces.ipynb"), Path.Combine(root, "notebooks", "05-visual-cue-enhancement.ipynb")], site);

        string low = File.ReadAllText(Path.Combine(site, "01-low-rank-subspaces.html"));
        Assert.Contains($"4. The scaling: {Inline("\\alpha/r")} or {Inline("\\alpha/\\sqrt{r}")}</h2>", low);
        Assert.Contains(Inline("|\\Delta W_{ij}|"), low);
        string vce = File.ReadAllText(Path.Combine(site, "05-visual-cue-enhancement.html"));
        Assert.Contains("<span class=\"math display\">f^* = W_\\text{out}\\, \\Big\\Vert_h \\sum_{\\ell, k}", vce);
        // Pages hold no plotly.js (3.6 MB when Plotly.NET embedded it): the site loads its one copy.
        Assert.DoesNotContain("plotly.js v", low);
    }

    static string[] BuildThreeChapters(TempFolder temp, out string site)
    {
        string[] notebooks =
        [
            Write(temp.Path, "10-first",
                Markdown("# 10 · First\n\n**Question.** What is $x$?\n\n**Prerequisites.** None."),
                Code("display(chart)", Html(Chart("First chart", ChartJson))),
                Code("image", Png(TinyPng()))),
            Write(temp.Path, "11-second",
                Markdown("# 11 · Second\n\nWhy does $y_{1}$ matter?"),
                Code("image", Png(TinyPng()))),
            Write(temp.Path, "12-third",
                Markdown("# 12 · Third\n\n**Question.** Is a page without a figure a chapter too?"),
                Code("table", Html("<table><tr><td>1</td></tr></table>"))),
        ];
        site = Path.Combine(temp.Path, "site");
        SiteBuilder.Build(notebooks, site);
        return notebooks;
    }

    [Fact]
    public void The_index_lists_every_chapter_in_order_with_its_question_and_key_figure()
    {
        using var temp = new TempFolder();
        BuildThreeChapters(temp, out string site);
        string index = File.ReadAllText(Path.Combine(site, "index.html"));

        var chapters = Regex.Matches(index, "<h2><a href=\"([^\"]+)\">").Select(m => m.Groups[1].Value);
        Assert.Equal(["10-first.html", "11-second.html", "12-third.html"], chapters);
        Assert.Contains($"<p><strong>Question.</strong> What is {Inline("x")}?</p>", index);
        Assert.Contains($"<p>Why does {Inline("y_{1}")} matter?</p>", index);
        // The key figure is the first chart (its static SVG) or image, linked to its cell.
        Assert.Contains("<a class=\"chapter-figure\" href=\"10-first.html#cell-2\"><img src=\"figures/10-first-2-1.svg\"", index);
        Assert.StartsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"", File.ReadAllText(Path.Combine(site, "figures", "10-first-2-1.svg")));
        Assert.Contains("<a class=\"chapter-figure\" href=\"11-second.html#cell-2\"><img src=\"figures/11-second-2-1.png\"", index);
        Assert.Contains("<div class=\"chapter-figure none\">", index);
        Assert.Equal(TinyPng(), File.ReadAllBytes(Path.Combine(site, "figures", "11-second-2-1.png")));
    }

    [Fact]
    public void A_cell_tagged_key_figure_chooses_the_key_figure_and_the_first_figure_is_no_longer_written()
    {
        using var temp = new TempFolder();
        string notebook = Write(temp.Path, "13-tagged",
            Markdown("# 13 · Tagged\n\n**Question.** Which figure stands for the chapter?"),
            Code("display(chart)", Html(Chart("First chart", ChartJson))),
            Tagged(new JsonArray("slow", Chapter.KeyFigureTag), "display(two charts)", Stdout("two charts\n"), Html(Chart("Chosen", ChartJson)), Html(Chart("After", ChartJson))),
            Tagged(new JsonArray(Chapter.KeyFigureTag), "image", Png(TinyPng())));
        string site = Path.Combine(temp.Path, "site");
        SiteBuilder.Build([notebook], site);

        Assert.Contains("<a class=\"chapter-figure\" href=\"13-tagged.html#cell-3\"><img src=\"figures/13-tagged-3-2.svg\"", File.ReadAllText(Path.Combine(site, "index.html")));
        // The first chart's SVG file was only for the key figure; images are always files.
        Assert.Equal(["13-tagged-3-2.svg", "13-tagged-4-1.png"], Directory.GetFiles(Path.Combine(site, "figures")).Select(Path.GetFileName).Order());
        // The chart shows on its page all the same.
        Assert.Contains("First chart", File.ReadAllText(Path.Combine(site, "13-tagged.html")));
    }

    [Fact]
    public void Tags_that_are_not_a_list_of_strings_are_an_error_naming_the_notebook_and_cell()
    {
        using var temp = new TempFolder();
        string notebook = Write(temp.Path, "14-bad-tags", Markdown("# 14"), Code("1"), Tagged(JsonValue.Create("key-figure"), "image", Png(TinyPng())));
        var error = Assert.Throws<InvalidDataException>(() => SiteBuilder.Build([notebook], Path.Combine(temp.Path, "site")));
        Assert.Equal($"{notebook}: cell 3: metadata.tags must be a list of strings, not \"key-figure\".", error.Message);
        notebook = Write(temp.Path, "15-bad-tags", Markdown("# 15"), Tagged(new JsonArray("key-figure", 3), "image", Png(TinyPng())));
        error = Assert.Throws<InvalidDataException>(() => SiteBuilder.Build([notebook], Path.Combine(temp.Path, "site")));
        Assert.Equal($"{notebook}: cell 2: metadata.tags must be a list of strings, not [\"key-figure\",3].", error.Message);
    }

    [Fact]
    public void Every_page_links_to_its_previous_and_next_page()
    {
        using var temp = new TempFolder();
        BuildThreeChapters(temp, out string site);
        static string[] Navigation(string html) => Regex.Matches(html, "<a class=\"(previous|next)\" href=\"([^\"]+)\"")
            .Select(m => $"{m.Groups[1].Value}:{m.Groups[2].Value}").ToArray();

        // Top and bottom of each page.
        Assert.Equal(["next:10-first.html", "next:10-first.html"], Navigation(File.ReadAllText(Path.Combine(site, "index.html"))));
        Assert.Equal(["previous:index.html", "next:11-second.html", "previous:index.html", "next:11-second.html"], Navigation(File.ReadAllText(Path.Combine(site, "10-first.html"))));
        Assert.Equal(["previous:10-first.html", "next:12-third.html", "previous:10-first.html", "next:12-third.html"], Navigation(File.ReadAllText(Path.Combine(site, "11-second.html"))));
        Assert.Equal(["previous:11-second.html", "next:index.html", "previous:11-second.html", "next:index.html"], Navigation(File.ReadAllText(Path.Combine(site, "12-third.html"))));
    }

    [Fact]
    public void Plotly_js_is_one_file_of_the_site_loaded_by_the_pages_with_charts_and_never_embedded()
    {
        using var temp = new TempFolder();
        BuildThreeChapters(temp, out string site);
        Assert.True(File.Exists(Path.Combine(site, "assets", "plotly.min.js")));
        Assert.Single(Directory.GetFiles(site, "plotly*.js", SearchOption.AllDirectories));

        int Loads(string page) => Regex.Matches(File.ReadAllText(Path.Combine(site, page)), "<script defer src=\"assets/plotly.min.js\"></script>").Count;
        Assert.Equal(1, Loads("10-first.html"));
        Assert.Equal(0, Loads("11-second.html"));
        Assert.Equal(0, Loads("12-third.html"));
        Assert.Equal(0, Loads("index.html"));
        foreach (string page in Directory.GetFiles(site, "*.html"))
            Assert.DoesNotContain("plotly.js v", File.ReadAllText(page));
    }

    [Fact]
    public void KaTeX_and_the_site_script_are_local_files()
    {
        using var temp = new TempFolder();
        BuildThreeChapters(temp, out string site);
        foreach (string asset in (string[])["assets/katex/katex.min.js", "assets/katex/katex.min.css", "assets/site.js", "assets/site.css"])
            Assert.True(File.Exists(Path.Combine(site, asset)), asset);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(site, "assets", "katex", "fonts"), "*.woff2"));
        foreach (string page in Directory.GetFiles(site, "*.html"))
            Assert.DoesNotMatch("(src|href)=\"(https?:)?//", File.ReadAllText(page));
    }

    [Fact]
    public void A_rebuild_replaces_the_site_and_a_folder_of_other_files_is_refused()
    {
        using var temp = new TempFolder();
        var notebooks = BuildThreeChapters(temp, out string site);
        SiteBuilder.Build(notebooks[..1], site);
        Assert.False(File.Exists(Path.Combine(site, "11-second.html")));
        // Nothing left of the staging or the old folder.
        Assert.Equal(["site"], Directory.GetDirectories(temp.Path).Select(Path.GetFileName).Where(n => n!.StartsWith("site", StringComparison.Ordinal)));

        string other = Path.Combine(temp.Path, "other");
        Directory.CreateDirectory(other);
        File.WriteAllText(Path.Combine(other, "keep.txt"), "mine");
        var error = Assert.Throws<IOException>(() => SiteBuilder.Build(notebooks, other));
        Assert.Contains(other, error.Message);
        Assert.True(File.Exists(Path.Combine(other, "keep.txt")));
    }
}
