using DualLora.Cli.Site;
using SkiaSharp;
using static DualLora.Tests.Site.TestNotebook;

namespace DualLora.Tests.Site;

/// <summary>The key figures as PNG files (headless chromium draws the charts; without it these tests fail saying how to install it).</summary>
public class KeyFigureExportTests
{
    [Fact]
    public async Task Key_figures_become_PNGs_named_after_their_notebooks_with_charts_drawn_at_twice_their_size()
    {
        using var temp = new TempFolder();
        string[] notebooks =
        [
            Write(temp.Path, "20-chart", Markdown("# 20"), Code("chart", Html(Chart("A chart", ChartJson)))),
            Write(temp.Path, "21-image", Markdown("# 21"), Code("image", Png(TinyPng()))),
            Write(temp.Path, "22-none", Markdown("# 22"), Code("table", Html("<table><tr><td>1</td></tr></table>"))),
        ];
        string folder = Path.Combine(temp.Path, "figures");
        var figures = await KeyFigureExport.ExportAsync(notebooks, folder, TimeSpan.FromSeconds(30));

        Assert.Equal(["20-chart", "21-image"], figures.Select(f => f.Chapter));
        Assert.Equal([Path.Combine(folder, "20-chart.png"), Path.Combine(folder, "21-image.png")], figures.Select(f => f.Path));
        // The test chart's SVG is 320 x 160.
        Assert.Equal((640, 320), (figures[0].Width, figures[0].Height));
        Assert.Equal((640, 320), KeyFigureExport.PngSize(File.ReadAllBytes(figures[0].Path), "20-chart"));
        Assert.Equal(TinyPng(), File.ReadAllBytes(figures[1].Path));
        Assert.Equal((2, 2), (figures[1].Width, figures[1].Height));
        Assert.False(File.Exists(Path.Combine(folder, "22-none.png")));

        // Drawn, not blank: the chart's line colour (#1f77b4) is among the pixels.
        using var bitmap = SKBitmap.Decode(figures[0].Path);
        bool Line(SKColor c) => Math.Abs(c.Red - 0x1f) < 24 && Math.Abs(c.Green - 0x77) < 24 && Math.Abs(c.Blue - 0xb4) < 24;
        Assert.Contains(bitmap.Pixels, Line);
        Assert.Equal(SKColors.White, bitmap.GetPixel(2, 2));
    }

    [Fact]
    public void A_file_that_is_not_a_PNG_is_an_error_naming_the_figure()
    {
        var error = Assert.Throws<InvalidDataException>(() => KeyFigureExport.PngSize("<svg/>"u8.ToArray(), "07-rectified-activations: figures/x.png"));
        Assert.Equal("07-rectified-activations: figures/x.png: not a PNG image (no PNG signature and IHDR chunk).", error.Message);
    }
}
