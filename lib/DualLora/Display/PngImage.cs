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
    /// Draws a 2-D tensor as a grey-scale image, each element a <paramref name="scale"/> x <paramref name="scale"/>
    /// block, the smallest value black and the largest white (a constant tensor is mid-grey).
    /// </summary>
    public static PngImage Grayscale(torch.Tensor values, int scale = 8)
    {
        if (values.dim() != 2) throw new ArgumentException($"Grayscale needs a 2-D tensor, got shape [{string.Join(", ", values.shape)}].", nameof(values));
        if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), "scale must be at least 1.");
        int rows = (int)values.shape[0], columns = (int)values.shape[1];
        float[] data;
        using (var cpu = values.detach().to(torch.CPU).to(torch.float32).contiguous()) data = cpu.data<float>().ToArray();
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
