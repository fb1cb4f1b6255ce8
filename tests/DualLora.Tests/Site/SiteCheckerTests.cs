using DualLora.Cli.Site;
using static DualLora.Tests.Site.TestNotebook;

namespace DualLora.Tests.Site;

/// <summary>
/// A site with one good page and one page per fault, checked once in headless chromium. Without chromium
/// the check throws, saying how to install it, and every test of this class fails with that message.
/// </summary>
public sealed class CheckedSite : IDisposable
{
    readonly TempFolder temp = new();
    public string Screenshots { get; }
    public SiteCheckResult Result { get; }

    public CheckedSite()
    {
        string[] notebooks =
        [
            Write(temp.Path, "good",
                Markdown("# Good\n\n**Question.** Do the three equations the markdown step used to garble render?\n\n"
                    + "## 4. The scaling: $\\alpha/r$ or $\\alpha/\\sqrt{r}$\n\n"
                    + "Same colour scale, $|$entry$|$; left to right: $\\Delta W$.\n\n"
                    + "$$f^* = W_\\text{out}\\, \\Big\\Vert_h \\sum_{\\ell, k} a_{h\\ell k}\\, v_{\\ell}^{(h)}\\big(p + \\Delta p_{h\\ell k} / (W, H)\\big), \\qquad x = \\text{anchor} + f^*$$\n\n"
                    + "Links: [the index](index.html), [this cell](#cell-2), [the chart](good.html#cell-2)."),
                Code("Charts.Lines(...)", Html(Chart("A hand-made chart in the library's form", ChartJson))),
                Code("PngImage.Heatmap(...)", Png(TinyPng()), Stdout("printed text\n"))),
            Write(temp.Path, "console-error",
                Markdown("# Console error"),
                Code("display(html)", Html("<script>console.error('deliberate console error');</script>"))),
            Write(temp.Path, "exception",
                Markdown("# Exception"),
                Code("display(html)", Html("<script>throw new Error('deliberate exception');</script>"))),
            Write(temp.Path, "broken-link",
                Markdown("# Broken links\n\n**Question.** Are broken links found?\n\n[a missing page](no-such-page.html) and [a missing anchor](good.html#no-such-anchor)")),
            Write(temp.Path, "broken-equation",
                Markdown("# Broken equation\n\n**Question.** Is a broken equation found?\n\nThis does not parse: $\\frac{1}$.")),
            Write(temp.Path, "missing-image",
                Markdown("# Missing image"),
                Code("display(html)", Html("<img src=\"figures/no-such-image.png\" alt=\"missing\">"))),
            Write(temp.Path, "broken-chart",
                Markdown("# Broken chart"),
                Code("display(chart)", Html(Chart("A chart whose figure is not JSON", "{\"data\": [oops")))),
        ];
        string site = Path.Combine(temp.Path, "site");
        SiteBuilder.Build(notebooks, site);
        Screenshots = Path.Combine(temp.Path, "screenshots");
        Result = SiteChecker.CheckAsync(site, Screenshots, TextWriter.Null).GetAwaiter().GetResult();
    }

    public IReadOnlyList<string> FaultsOf(string page) => Result.Faults.Where(f => f.Page == page).Select(f => f.Fault).ToList();

    public void Dispose() => temp.Dispose();
}

public class SiteCheckerTests(CheckedSite site) : IClassFixture<CheckedSite>
{
    static string Describe(IEnumerable<string> faults) => string.Join("\n", faults);

    [Fact]
    public void A_good_page_with_equations_a_chart_an_image_and_links_passes()
    {
        Assert.True(site.FaultsOf("good.html").Count == 0, Describe(site.FaultsOf("good.html")));
        Assert.True(site.FaultsOf("index.html").Count == 0, Describe(site.FaultsOf("index.html")));
    }

    [Fact]
    public void Every_page_is_checked_and_has_a_screenshot()
    {
        Assert.Equal(8, site.Result.Pages.Count);
        foreach (string page in site.Result.Pages)
        {
            var screenshot = new FileInfo(Path.Combine(site.Screenshots, Path.ChangeExtension(page, ".png")));
            Assert.True(screenshot.Exists && screenshot.Length > 1000, $"no screenshot of {page}");
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(screenshot.FullName)[..4]);
        }
    }

    [Fact]
    public void A_console_error_fails_and_is_named() =>
        Assert.Contains(site.FaultsOf("console-error.html"), f => f == "console error: deliberate console error");

    [Fact]
    public void An_uncaught_exception_fails_and_is_named() =>
        Assert.Contains(site.FaultsOf("exception.html"), f => f.StartsWith("uncaught exception: Error: deliberate exception", StringComparison.Ordinal));

    [Fact]
    public void Broken_links_fail_and_are_named()
    {
        var faults = site.FaultsOf("broken-link.html");
        Assert.Contains("broken link no-such-page.html: no-such-page.html does not exist", faults);
        Assert.Contains("broken link good.html#no-such-anchor: no element with id 'no-such-anchor' in good.html", faults);
        Assert.Equal(2, faults.Count);
    }

    [Fact]
    public void An_equation_KaTeX_cannot_render_fails_and_is_named()
    {
        var fault = Assert.Single(site.FaultsOf("broken-equation.html"));
        Assert.StartsWith("equation KaTeX could not render: \\frac{1} (ParseError: KaTeX parse error:", fault);
    }

    [Fact]
    public void An_image_that_does_not_load_fails_and_is_named() =>
        Assert.Contains("image did not load: figures/no-such-image.png", site.FaultsOf("missing-image.html"));

    [Fact]
    public void A_chart_plotly_cannot_draw_fails_and_is_named()
    {
        var faults = site.FaultsOf("broken-chart.html");
        Assert.Contains("chart 1 (A chart whose figure is not JSON) was not drawn by plotly.js (no svg.main-svg)", faults);
        Assert.Contains(faults, f => f.StartsWith("console error: chart 1 (A chart whose figure is not JSON): SyntaxError", StringComparison.Ordinal));
    }
}
