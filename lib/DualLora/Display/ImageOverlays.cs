using SkiaSharp;
using TorchSharp;

namespace DualLora.Display;

/// <summary>One point to draw over an image: where (in [0, 1] image coordinates, x right, y down), how large, which colour group.</summary>
public sealed record ImagePoint(double X, double Y, double Weight, int Group);

/// <summary>
/// Figures drawn over an image with SkiaSharp, as PNG: sampling points (VCE's figure) and a per-patch
/// magnitude laid over the image (the paper's enhanced-cue figure).
/// </summary>
public static class ImageOverlays
{
    // Distinct colours for up to eight groups (levels), from the Tableau 10 palette.
    static readonly SKColor[] Palette =
    [
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40),
        new(148, 103, 189), new(140, 86, 75), new(227, 119, 194), new(127, 127, 127),
    ];

    /// <summary>The colour of group <paramref name="group"/> in <see cref="Points"/>, as #rrggbb, for legends.</summary>
    public static string GroupColour(int group)
    {
        var c = Palette[group % Palette.Length];
        return $"#{c.Red:x2}{c.Green:x2}{c.Blue:x2}";
    }

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
    /// The grey image with a grid of magnitudes (gridHeight x gridWidth) laid over it: normalised to [0, 1],
    /// upsampled bilinearly to the image's size and blended in viridis colours at the given opacity.
    /// </summary>
    public static PngImage Magnitude(torch.Tensor image, torch.Tensor magnitude, int scale = 8, double opacity = 0.6)
    {
        using var bitmap = GreyBitmap(image, scale);
        using var scope = torch.NewDisposeScope();
        var m = magnitude.detach().to(torch.CPU).to(torch.float32);
        m = (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12);
        var upsampled = torch.nn.functional.interpolate(m.unsqueeze(0).unsqueeze(0), [bitmap.Height, bitmap.Width],
            mode: torch.InterpolationMode.Bilinear, align_corners: false)[0, 0].contiguous();
        var values = upsampled.data<float>().ToArray();
        using var overlay = new SKBitmap(bitmap.Width, bitmap.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
                overlay.SetPixel(x, y, PngImage.Viridis(values[y * bitmap.Width + x]));
        using var canvas = new SKCanvas(bitmap);
        using var paint = new SKPaint { Color = SKColors.White.WithAlpha((byte)(255 * opacity)) };
        canvas.DrawBitmap(overlay, 0, 0, paint);
        return PngImage.FromBitmap(bitmap);
    }

    static SKBitmap GreyBitmap(torch.Tensor image, int scale)
    {
        using var decoded = SKBitmap.Decode(PngImage.Grayscale(image, scale).Bytes);
        return decoded.Copy(SKColorType.Rgba8888);
    }
}
