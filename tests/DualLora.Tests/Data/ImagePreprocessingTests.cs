using DualLora.Data;
using DualLora.IO;
using DualLora.Multimodal;
using DualLora.Vision;
using SkiaSharp;

namespace DualLora.Tests.Data;

public sealed class ImagePreprocessingTests
{
    static void WriteImage(string path, int width, int height, Func<int, int, SKColor> colour, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
            bitmap.SetPixel(x, y, colour(x, y));
        using var data = bitmap.Encode(format, 95);
        File.WriteAllBytes(path, data.ToArray());
    }

    static SKColor Grey(int value) => new((byte)value, (byte)value, (byte)value);

    static float[,,] Values(TorchSharp.torch.Tensor image)
    {
        var (c, h, w) = ((int)image.shape[0], (int)image.shape[1], (int)image.shape[2]);
        var flat = image.data<float>().ToArray();
        var values = new float[c, h, w];
        Buffer.BlockCopy(flat, 0, values, 0, flat.Length * sizeof(float));
        return values;
    }

    [Fact]
    public void The_small_model_gets_one_grey_channel_of_its_image_size_and_a_three_channel_tower_gets_clip()
    {
        var small = ImagePreprocessing.ForVisionTower(LlavaConfig.Small().Vision);
        Assert.Equal((56, 1, 0f, 1f), (small.ImageSize, small.Channels, small.Mean[0], small.Std[0]));
        Assert.Equal(ImagePreprocessing.Grey(56), small);

        var clip = ImagePreprocessing.ForVisionTower(new ClipVisionConfig(ImageSize: 336, PatchSize: 14, NumChannels: 3));
        Assert.Equal((336, 3), (clip.ImageSize, clip.Channels));
        Assert.Equal(ImagePreprocessing.ClipMean, clip.Mean);
        Assert.Equal(ImagePreprocessing.ClipStd, clip.Std);

        var error = Assert.Throws<ArgumentException>(() => ImagePreprocessing.ForVisionTower(new ClipVisionConfig(NumChannels: 4)));
        Assert.Contains("num_channels", error.Message);
    }

    [Fact]
    public void A_grey_png_of_the_towers_size_gives_its_pixels_over_255()
    {
        using var folder = new TempFolder();
        var path = folder.File("ramp.png");
        WriteImage(path, 56, 56, (x, y) => Grey((x * 4 + y) % 256));

        using var image = ImagePreprocessing.Grey(56).Load(path);

        Assert.Equal([1L, 56, 56], image.shape);
        var values = Values(image);
        for (var y = 0; y < 56; y++)
        for (var x = 0; x < 56; x++)
            Assert.Equal((x * 4 + y) % 256 / 255f, values[0, y, x]);
    }

    [Fact]
    public void A_coloured_pixel_becomes_its_bt601_luminance_in_grey()
    {
        using var folder = new TempFolder();
        var path = folder.File("colour.png");
        WriteImage(path, 56, 56, (x, y) => new SKColor(200, 100, 50));

        using var image = ImagePreprocessing.Grey(56).Load(path);

        // 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2, a whole grey level as PIL stores it: 124.
        Assert.Equal(124 / 255f, Values(image)[0, 30, 20]);
    }

    [Fact]
    public void A_wide_image_keeps_its_centre_columns()
    {
        using var folder = new TempFolder();
        var path = folder.File("wide.png");
        // 112 x 56: the shortest side is already 56, so the crop is columns 28 to 83, with no resampling.
        WriteImage(path, 112, 56, (x, y) => x is >= 28 and < 84 ? Grey((x - 28) * 4 + y % 4) : Grey(255));

        var values = Values(ImagePreprocessing.Grey(56).Load(path));

        for (var y = 0; y < 56; y++)
        for (var x = 0; x < 56; x++)
            Assert.Equal((x * 4 + y % 4) / 255f, values[0, y, x]);
    }

    [Fact]
    public void A_tall_image_keeps_its_centre_rows()
    {
        using var folder = new TempFolder();
        var path = folder.File("tall.png");
        // 56 x 81: the crop starts at row (81 - 56) / 2 = 12, as CLIPImageProcessor rounds it.
        WriteImage(path, 56, 81, (x, y) => y is >= 12 and < 68 ? Grey((y - 12) * 4 + x % 4) : Grey(255));

        var values = Values(ImagePreprocessing.Grey(56).Load(path));

        for (var y = 0; y < 56; y++)
        for (var x = 0; x < 56; x++)
            Assert.Equal((y * 4 + x % 4) / 255f, values[0, y, x]);
    }

    [Fact]
    public void Clip_normalises_a_uniform_image_to_the_hand_computed_values()
    {
        using var folder = new TempFolder();
        var path = folder.File("uniform.png");
        WriteImage(path, 300, 200, (x, y) => new SKColor(255, 128, 0));

        using var image = ImagePreprocessing.Clip(224).Load(path);

        Assert.Equal([3L, 224, 224], image.shape);
        var values = Values(image);
        // (255/255 - 0.48145466) / 0.26862954, (128/255 - 0.4578275) / 0.26130258, (0 - 0.40821073) / 0.27577711
        float[] expected = [1.9303363f, 0.16889724f, -1.4802198f];
        for (var c = 0; c < 3; c++)
        {
            Assert.Equal(expected[c], values[c, 0, 0], 1e-5f);
            Assert.Equal(expected[c], values[c, 111, 150], 1e-5f);
            Assert.Equal(expected[c], values[c, 223, 223], 1e-5f);
        }
    }

    [Fact]
    public void Shrinking_averages_fine_detail_instead_of_aliasing_it()
    {
        using var folder = new TempFolder();
        var path = folder.File("checkerboard.png");
        WriteImage(path, 224, 224, (x, y) => Grey((x + y) % 2 == 0 ? 0 : 255));

        var values = Values(ImagePreprocessing.Grey(56).Load(path));

        // Point sampling would give only 0 or 1; an antialiased shrink of a 1-pixel checkerboard is mid grey.
        for (var y = 0; y < 56; y++)
        for (var x = 0; x < 56; x++)
            Assert.InRange(values[0, y, x], 0.4f, 0.6f);
    }

    [Fact]
    public void Enlarging_a_uniform_jpeg_keeps_its_value()
    {
        using var folder = new TempFolder();
        var path = folder.File("small.jpg");
        WriteImage(path, 20, 28, (x, y) => Grey(90), SKEncodedImageFormat.Jpeg);

        var values = Values(ImagePreprocessing.Grey(56).Load(path));

        Assert.Equal(90 / 255f, values[0, 0, 0], 2 / 255f);
        Assert.Equal(90 / 255f, values[0, 40, 17], 2 / 255f);
    }

    [Fact]
    public void A_missing_a_corrupt_and_a_truncated_file_are_errors_naming_the_file()
    {
        using var folder = new TempFolder();
        var preprocessing = ImagePreprocessing.Grey(56);

        var missing = folder.File("missing.png");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => preprocessing.Load(missing)).Message);

        var corrupt = folder.File("corrupt.png");
        File.WriteAllText(corrupt, "not an image at all");
        Assert.Contains(corrupt, Assert.Throws<InvalidFileException>(() => preprocessing.Load(corrupt)).Message);

        var whole = folder.File("whole.png");
        WriteImage(whole, 56, 56, (x, y) => Grey((x * 37 + y * 101) % 256));
        var truncated = folder.File("truncated.png");
        var bytes = File.ReadAllBytes(whole);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        Assert.Contains(truncated, Assert.Throws<InvalidFileException>(() => preprocessing.Load(truncated)).Message);
    }
}
