using System.Globalization;
using System.Text;

namespace DualLora.Display;

/// <summary>
/// Writes the SVG of a figure element by element. Coordinates are rounded to two decimals and every
/// number is written in the invariant culture, so the same figure gives the same bytes on every run.
/// </summary>
internal sealed class SvgCanvas
{
    public const string FontFamily = "Helvetica, Arial, sans-serif";
    public const string Ink = "#222222";
    public const string Faint = "#d9d9d9";
    public const string AxisColour = "#555555";

    readonly StringBuilder svg = new();

    public SvgCanvas(double width, double height, string label)
    {
        svg.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {N(width)} {N(height)}\" width=\"{N(width)}\" height=\"{N(height)}\" ")
           .Append($"role=\"img\" font-family=\"{FontFamily}\" style=\"max-width:100%;height:auto\">");
        svg.Append($"<title>{Escape(label)}</title>");
        // An opaque background keeps dark text readable in dark editor themes.
        svg.Append($"<rect width=\"{N(width)}\" height=\"{N(height)}\" fill=\"#ffffff\"/>");
    }

    /// <summary>A number as SVG wants it: invariant, at most two decimals, no trailing zeros.</summary>
    public static string N(double value) => Math.Round(value, 2).ToString("0.##", CultureInfo.InvariantCulture);

    public static string Escape(string text) =>
        text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;");

    /// <summary>Rough width of a text in pixels (an average glyph is about 0.6 of the font size), for layout.</summary>
    public static double TextWidth(string text, double size) => text.Length * size * 0.6;

    public void Line(double x1, double y1, double x2, double y2, string stroke, double width = 1) =>
        svg.Append($"<line x1=\"{N(x1)}\" y1=\"{N(y1)}\" x2=\"{N(x2)}\" y2=\"{N(y2)}\" stroke=\"{stroke}\" stroke-width=\"{N(width)}\"/>");

    public void Rect(double x, double y, double width, double height, string fill, string? stroke = null) =>
        svg.Append($"<rect x=\"{N(x)}\" y=\"{N(y)}\" width=\"{N(width)}\" height=\"{N(height)}\" fill=\"{fill}\"")
           .Append(stroke is null ? "/>" : $" stroke=\"{stroke}\"/>");

    public void Polyline(IEnumerable<(double X, double Y)> points, string stroke, double width = 2) =>
        svg.Append($"<polyline fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{N(width)}\" stroke-linejoin=\"round\" points=\"")
           .Append(string.Join(" ", points.Select(p => $"{N(p.X)},{N(p.Y)}"))).Append("\"/>");

    public void Circle(double x, double y, double radius, string fill) =>
        svg.Append($"<circle cx=\"{N(x)}\" cy=\"{N(y)}\" r=\"{N(radius)}\" fill=\"{fill}\"/>");

    /// <summary>A PNG stretched into a box: with <paramref name="pixelated"/>, each pixel stays a sharp square (heatmap cells); else it is smoothed (a gradient).</summary>
    public void Png(double x, double y, double width, double height, byte[] png, bool pixelated = true) =>
        svg.Append($"<image x=\"{N(x)}\" y=\"{N(y)}\" width=\"{N(width)}\" height=\"{N(height)}\" preserveAspectRatio=\"none\" ")
           .Append(pixelated ? "style=\"image-rendering:pixelated\" " : "")
           .Append($"href=\"data:image/png;base64,{Convert.ToBase64String(png)}\"/>");

    /// <summary>Text; <paramref name="anchor"/> is start, middle or end; <paramref name="rotate"/> turns it about (x, y).</summary>
    public void Text(double x, double y, string text, double size, string anchor = "middle", bool bold = false, double rotate = 0, string fill = Ink)
    {
        svg.Append($"<text x=\"{N(x)}\" y=\"{N(y)}\" font-size=\"{N(size)}\" text-anchor=\"{anchor}\" fill=\"{fill}\"");
        if (bold) svg.Append(" font-weight=\"bold\"");
        if (rotate != 0) svg.Append($" transform=\"rotate({N(rotate)} {N(x)} {N(y)})\"");
        svg.Append($">{Escape(text)}</text>");
    }

    public override string ToString() => svg + "</svg>";
}
