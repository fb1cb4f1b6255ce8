using SkiaSharp;
using TorchSharp;

namespace DualLora.Display;

/// <summary>
/// A PNG image for notebooks: shown as image/png by the notebook formatter (see <see cref="Formatters"/>),
/// so GitHub's static notebook view shows it too.
/// </summary>
public sealed record PngImage(byte[] Bytes, int Width, int Height)
{
    public static PngImage FromBitmap(SKBitmap bitmap)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return new PngImage(data.ToArray(), bitmap.Width, bitmap.Height);
    }

    /// <summary>
    /// The cells of a heatmap (values row by row), each a <paramref name="scale"/> x <paramref name="scale"/>
    /// block coloured on viridis from dark purple (<paramref name="low"/>) to yellow (<paramref name="high"/>).
    /// <see cref="HeatmapFigure"/> draws it with axes and a colour bar.
    /// </summary>
    internal static PngImage HeatmapPixels(int rows, int columns, IReadOnlyList<double> values, double low, double high, int scale)
    {
        using var bitmap = new SKBitmap(columns * scale, rows * scale, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint())
        {
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < columns; c++)
                {
                    paint.Color = Viridis(high > low ? Math.Clamp((values[r * columns + c] - low) / (high - low), 0, 1) : 0.5);
                    canvas.DrawRect(c * scale, r * scale, scale, scale, paint);
                }
        }
        return FromBitmap(bitmap);
    }

    /// <summary>A colour bar's gradient: one pixel wide, <paramref name="steps"/> high, the top yellow (high), the bottom purple (low).</summary>
    internal static PngImage ColourBarPixels(int steps = 256)
    {
        using var bitmap = new SKBitmap(1, steps, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (int y = 0; y < steps; y++) bitmap.SetPixel(0, y, Viridis(1 - (y + 0.5) / steps));
        return FromBitmap(bitmap);
    }

    // Five anchors of matplotlib's viridis, interpolated linearly.
    static readonly (double R, double G, double B)[] ViridisAnchors =
        [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)];

    internal static SKColor Viridis(double t)
    {
        double position = t * (ViridisAnchors.Length - 1);
        int i = Math.Min((int)position, ViridisAnchors.Length - 2);
        double f = position - i;
        var (a, b) = (ViridisAnchors[i], ViridisAnchors[i + 1]);
        return new SKColor((byte)(a.R + f * (b.R - a.R)), (byte)(a.G + f * (b.G - a.G)), (byte)(a.B + f * (b.B - a.B)));
    }

    static (int Rows, int Columns, float[] Data) Matrix(torch.Tensor values, int scale)
    {
        if (values.dim() != 2) throw new ArgumentException($"An image needs a 2-D tensor, got shape [{string.Join(", ", values.shape)}].", nameof(values));
        if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), "scale must be at least 1.");
        using var cpu = values.detach().to(torch.CPU).to(torch.float32).contiguous();
        return ((int)values.shape[0], (int)values.shape[1], cpu.data<float>().ToArray());
    }

    /// <summary>
    /// Draws a 2-D tensor as a grey-scale image, each element a <paramref name="scale"/> x <paramref name="scale"/>
    /// block, the smallest value black and the largest white (a constant tensor is mid-grey).
    /// </summary>
    public static PngImage Grayscale(torch.Tensor values, int scale = 8)
    {
        var (rows, columns, data) = Matrix(values, scale);
        float low = data.Min(), high = data.Max();
        using var bitmap = new SKBitmap(columns * scale, rows * scale, SKColorType.Gray8, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint())
        {
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < columns; c++)
                {
                    byte level = high > low ? (byte)Math.Round(255 * (data[r * columns + c] - low) / (high - low)) : (byte)128;
                    paint.Color = new SKColor(level, level, level);
                    canvas.DrawRect(c * scale, r * scale, scale, scale, paint);
                }
        }
        return FromBitmap(bitmap);
    }
}
