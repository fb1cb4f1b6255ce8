using SkiaSharp;
using TorchSharp;

namespace DualLora.Display;

/// <summary>One point to draw over an image: where (in [0, 1] image coordinates, x right, y down), how large, which colour group.</summary>
public sealed record ImagePoint(double X, double Y, double Weight, int Group);

/// <summary>
/// Figures drawn over an image with SkiaSharp, as PNG: sampling points and per-patch values (VCE's figures).
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

    /// <summary>
    /// The grey image (scaled by <paramref name="scale"/>), then one copy of it per grid of values, side by side
    /// with a gap of <paramref name="gap"/> pixels: each grid (rows x columns of patches, dividing the image
    /// evenly) is normalised to its own maximum, each patch's value covers the patch's pixels in viridis
    /// (0 dark purple, the maximum yellow), blended over the grey image with <paramref name="opacity"/>.
    /// </summary>
    public static PngImage PatchValues(torch.Tensor image, IReadOnlyList<torch.Tensor> grids, int scale = 4, double opacity = 0.6, int gap = 6)
    {
        if (image.dim() != 2) throw new ArgumentException($"The image needs a 2-D tensor, got shape [{string.Join(", ", image.shape)}].", nameof(image));
        if (opacity < 0 || opacity > 1) throw new ArgumentOutOfRangeException(nameof(opacity), "opacity must lie in [0, 1].");
        using var grey = GreyBitmap(image, scale);
        int width = grey.Width, height = grey.Height;
        using var bitmap = new SKBitmap(width * (grids.Count + 1) + gap * grids.Count, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        canvas.DrawBitmap(grey, 0, 0);
        for (int g = 0; g < grids.Count; g++)
        {
            var grid = grids[g];
            if (grid.dim() != 2) throw new ArgumentException($"Grid {g} needs a 2-D tensor, got shape [{string.Join(", ", grid.shape)}].", nameof(grids));
            int rows = (int)grid.shape[0], columns = (int)grid.shape[1];
            if (height % rows != 0 || width % columns != 0)
                throw new ArgumentException($"Grid {g} ({rows} x {columns}) does not divide the {height} x {width} image evenly.", nameof(grids));
            using var cpu = grid.detach().to(torch.CPU).to(torch.float64).contiguous();
            double[] values = cpu.data<double>().ToArray();
            double highest = values.Max();
            int left = (width + gap) * (g + 1), cellWidth = width / columns, cellHeight = height / rows;
            canvas.DrawBitmap(grey, left, 0);
            using var paint = new SKPaint();
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < columns; c++)
                {
                    double share = highest > 0 ? Math.Clamp(values[r * columns + c] / highest, 0, 1) : 0;
                    paint.Color = PngImage.Viridis(share).WithAlpha((byte)Math.Round(255 * opacity));
                    canvas.DrawRect(left + c * cellWidth, r * cellHeight, cellWidth, cellHeight, paint);
                }
        }
        return PngImage.FromBitmap(bitmap);
    }

    static SKBitmap GreyBitmap(torch.Tensor image, int scale)
    {
        using var decoded = SKBitmap.Decode(PngImage.Grayscale(image, scale).Bytes);
        return decoded.Copy(SKColorType.Rgba8888);
    }
}
