using DualLora.Display;
using SkiaSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Display;

public class ImageOverlaysTests
{
    static SKColor Pixel(PngImage png, int x, int y)
    {
        using var bitmap = SKBitmap.Decode(png.Bytes);
        return bitmap.GetPixel(x, y);
    }

    [Fact]
    public void Patch_values_sit_beside_the_image_each_grid_on_its_own_maximum()
    {
        var image = zeros(4, 4);                                   // a constant image draws mid-grey (128)
        var small = tensor(new double[,] { { 0, 1 }, { 0, 0 } });
        var large = tensor(new double[,] { { 0, 10 }, { 5, 0 } });
        var png = ImageOverlays.PatchValues(image, [small, large], scale: 2, opacity: 0.5, gap: 3);
        Assert.Equal((8 * 3 + 3 * 2, 8), (png.Width, png.Height));
        Assert.Equal(new SKColor(128, 128, 128), Pixel(png, 1, 1));           // the image itself, no overlay
        // Half and half over grey 128: viridis(0) = (68, 1, 84), viridis(1) = (253, 231, 37), viridis(0.5) = (33, 145, 140).
        AssertClose((98, 64.5, 106), Pixel(png, 11, 1));           // first grid, top left (0)
        AssertClose((190.5, 179.5, 82.5), Pixel(png, 11 + 4, 1));  // first grid, top right (its maximum, 1)
        AssertClose((190.5, 179.5, 82.5), Pixel(png, 22 + 4, 1));  // second grid, top right (its maximum, 10)
        AssertClose((80.5, 136.5, 134), Pixel(png, 22 + 1, 5));    // second grid, bottom left (5 of 10)
    }

    [Fact]
    public void A_grid_that_does_not_divide_the_image_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => ImageOverlays.PatchValues(zeros(6, 6), [zeros(4, 4)], scale: 1));
        Assert.Contains("does not divide", error.Message);
        Assert.Throws<ArgumentException>(() => ImageOverlays.PatchValues(zeros(4, 4), [zeros(4)], scale: 1));
    }

    static void AssertClose((double R, double G, double B) expected, SKColor actual)
    {
        Assert.InRange(actual.Red, expected.R - 1, expected.R + 1);
        Assert.InRange(actual.Green, expected.G - 1, expected.G + 1);
        Assert.InRange(actual.Blue, expected.B - 1, expected.B + 1);
    }
}
