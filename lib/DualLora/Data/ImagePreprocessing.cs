using DualLora.IO;
using DualLora.Vision;
using SkiaSharp;
using static TorchSharp.torch;

namespace DualLora.Data;

/// <summary>
/// Turns an image file (PNG, JPEG, anything SkiaSharp decodes) into the float tensor (channels, size, size)
/// a vision tower reads: resize so the shortest side is <paramref name="ImageSize"/>, centre crop to a
/// square, scale to [0, 1], then subtract <paramref name="Mean"/> and divide by <paramref name="Std"/> per
/// channel. One grey channel is the luminance of the RGB pixel (ITU-R BT.601 weights, as PIL's <c>convert("L")</c>).
/// </summary>
public sealed record ImagePreprocessing(int ImageSize, int Channels, IReadOnlyList<float> Mean, IReadOnlyList<float> Std)
{
    /// <summary>CLIP's <c>image_mean</c> (OpenAI's training statistics, as in every CLIP <c>preprocessor_config.json</c>).</summary>
    public static readonly IReadOnlyList<float> ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    /// <summary>CLIP's <c>image_std</c>.</summary>
    public static readonly IReadOnlyList<float> ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    /// <summary>CLIP's preprocessing (<c>CLIPImageProcessor</c>): RGB, shortest side to the size, centre crop, CLIP mean and std.</summary>
    public static ImagePreprocessing Clip(int imageSize) => new(imageSize, 3, ClipMean, ClipStd);

    /// <summary>
    /// The small model's preprocessing: grey, shortest side to the size, centre crop, pixels in [0, 1]
    /// unnormalised. The small encoder is trained from scratch on these pixels, so there are no pretraining
    /// statistics to match, and [0, 1] keeps a black background (Fashion-MNIST's) exactly zero.
    /// </summary>
    public static ImagePreprocessing Grey(int imageSize) => new(imageSize, 1, Unnormalised, Unscaled);

    // Shared, so that two equal preprocessings are equal records.
    static readonly IReadOnlyList<float> Unnormalised = [0f], Unscaled = [1f];

    /// <summary>
    /// The preprocessing a tower's config implies: three channels are a real CLIP tower (CLIP's statistics),
    /// one channel is the project's small grey encoder.
    /// </summary>
    public static ImagePreprocessing ForVisionTower(ClipVisionConfig vision) => vision.NumChannels switch
    {
        3 => Clip(vision.ImageSize),
        1 => Grey(vision.ImageSize),
        _ => throw new ArgumentException($"num_channels: {vision.NumChannels} has no image preprocessing; use 3 (RGB, CLIP) or 1 (grey)."),
    };

    /// <summary>The largest image decoded: 8192 x 8192 pixels (256 MB as RGBA), 600 times CLIP-L/336's input.</summary>
    public const long MaxPixels = 1L << 26;

    /// <summary>Decodes <paramref name="path"/> and preprocesses it; errors name the file.</summary>
    public Tensor Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: image file not found.", path);
        using var codec = SKCodec.Create(path, out var result)
            ?? throw new InvalidFileException(path, $"not a decodable image ({result}).");
        // A header may claim any size: refuse one far above any vision tower's input before its pixels are allocated.
        if ((long)codec.Info.Width * codec.Info.Height > MaxPixels)
            throw new InvalidFileException(path, $"an image of {codec.Info.Width} x {codec.Info.Height} pixels, more than the {MaxPixels:N0} this reader decodes (a damaged header?).");
        // Unpremultiplied RGBA keeps the colour of transparent pixels as PIL's convert("RGB") does.
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        // SKBitmap.Decode accepts a truncated file with its missing rows blank; PIL refuses it, and so do we.
        var decoded = codec.GetPixels(info, bitmap.GetPixels());
        if (decoded != SKCodecResult.Success)
            throw new InvalidFileException(path, $"the image data is corrupt or truncated ({decoded}).");
        return Preprocess(bitmap);
    }

    /// <summary>Preprocesses a decoded image (any size) into (channels, size, size).</summary>
    public Tensor Preprocess(SKBitmap image)
    {
        if (Channels is not (1 or 3) || Mean.Count != Channels || Std.Count != Channels)
            throw new ArgumentException($"{Channels} channels with {Mean.Count} means and {Std.Count} stds: use 1 or 3 channels, one mean and std each.");
        // The shortest side becomes ImageSize; the longer side is truncated as CLIPImageProcessor computes it.
        var scale = (double)ImageSize / Math.Min(image.Width, image.Height);
        var width = Math.Max(ImageSize, (int)(image.Width * scale));
        var height = Math.Max(ImageSize, (int)(image.Height * scale));
        using var resized = Resize(image, width, height);
        var left = (width - ImageSize) / 2;
        var top = (height - ImageSize) / 2;

        var rgba = resized.GetPixelSpan();
        var pixels = new float[Channels * ImageSize * ImageSize];
        var plane = ImageSize * ImageSize;
        for (var y = 0; y < ImageSize; y++)
        for (var x = 0; x < ImageSize; x++)
        {
            var source = ((top + y) * width + left + x) * 4;
            var target = y * ImageSize + x;
            if (Channels == 1)
            {
                // PIL's fixed-point convert("L"): a whole grey level, so a grey pixel keeps its value exactly.
                var luminance = (rgba[source] * 19595 + rgba[source + 1] * 38470 + rgba[source + 2] * 7471 + 0x8000) >> 16;
                pixels[target] = (luminance / 255f - Mean[0]) / Std[0];
            }
            else
            {
                for (var c = 0; c < 3; c++)
                    pixels[c * plane + target] = (rgba[source + c] / 255f - Mean[c]) / Std[c];
            }
        }
        return tensor(pixels, [Channels, ImageSize, ImageSize]);
    }

    /// <summary>
    /// Shrinking samples mipmaps (each output pixel averages the source pixels it covers, as PIL's antialiased
    /// bicubic does, instead of aliasing fine detail); enlarging uses the Catmull-Rom cubic, PIL's bicubic kernel.
    /// </summary>
    static SKBitmap Resize(SKBitmap image, int width, int height)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        if (width == image.Width && height == image.Height) return image.Copy(SKColorType.Rgba8888);
        var sampling = width < image.Width
            ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear)
            : new SKSamplingOptions(SKCubicResampler.CatmullRom);
        return image.Resize(info, sampling)
            ?? throw new InvalidOperationException($"SkiaSharp could not resize a {image.Width} x {image.Height} image to {width} x {height}.");
    }
}
