using SkiaSharp;
using TorchSharp;

namespace DualLora.Display;

/// <summary>One point to draw over an image: where (in [0, 1] image coordinates, x right, y down), how large, which colour group.</summary>
public sealed record ImagePoint(double X, double Y, double Weight, int Group);

/// <summary>
/// Figures drawn over an image with SkiaSharp, as PNG: sampling points (VCE's figure).
/// </summary>
public static class ImageOverlays
{
    // The figures' palette (Tableau 10), so a level has the same colour here as in a chart.
    static readonly SKColor[] Palette = Figure.Palette.Select(SKColor.Parse).ToArray();

    /// <summary>The colour of group <paramref name="group"/> in <see cref="Points"/>, as #rrggbb, for legends.</summary>
    public static string GroupColour(int group) => Figure.Palette[group % Figure.Palette.Length];

    /// <summary>
    /// The grey image (2-D tensor, scaled by <paramref name="scale"/>) with a circle per point, its area
    /// proportional to the weight, coloured by group; the cell of <paramref name="highlight"/> (if given,
    /// as (x, y) in [0, 1] with the grid size) outlined in white.
    /// </summary>
    public static PngImage Points(torch.Tensor image, IEnumerable<ImagePoint> points, int scale = 8, (double X, double Y, int GridWidth, int GridHeight)? highlight = null)
    {
        using var bitmap = GreyBitmap(image, scale);
        using var canvas = new SKCanvas(bitmap);
        int width = bitmap.Width, height = bitmap.Height;
        var list = points.ToList();
        double heaviest = list.Count == 0 ? 1 : Math.Max(1e-12, list.Max(p => p.Weight));
        foreach (var point in list.OrderBy(p => p.Weight))
        {
            using var fill = new SKPaint { Color = Palette[point.Group % Palette.Length].WithAlpha(200), IsAntialias = true };
            float radius = (float)(Math.Max(1.5, scale * 0.9 * Math.Sqrt(point.Weight / heaviest)));
            canvas.DrawCircle((float)(point.X * width), (float)(point.Y * height), radius, fill);
        }
        if (highlight is { } h)
        {
            float cellWidth = width / (float)h.GridWidth, cellHeight = height / (float)h.GridHeight;
            using var outline = new SKPaint { Color = SKColors.White, IsStroke = true, StrokeWidth = 2 };
            canvas.DrawRect((float)(h.X * width - cellWidth / 2), (float)(h.Y * height - cellHeight / 2), cellWidth, cellHeight, outline);
        }
        return PngImage.FromBitmap(bitmap);
    }

    static SKBitmap GreyBitmap(torch.Tensor image, int scale)
    {
        using var decoded = SKBitmap.Decode(PngImage.Grayscale(image, scale).Bytes);
        return decoded.Copy(SKColorType.Rgba8888);
    }
}
