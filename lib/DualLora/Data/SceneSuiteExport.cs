using DualLora.IO;
using SkiaSharp;
using static TorchSharp.torch;

namespace DualLora.Data;

/// <summary>The files a suite export wrote: one LLaVA JSON file per split and the scenes' PNGs.</summary>
public sealed record ExportedSuite(IReadOnlyDictionary<SceneSplit, string> JsonFiles, string ImageFolder, int ImageCount);

/// <summary>
/// Writes a <see cref="SceneSuite"/> as LLaVA instruction data: <c>training.json</c>, <c>validation.json</c>
/// and <c>evaluation.json</c>, each a JSON list of <c>{"id", "image", "conversations": [{"from": "human",
/// "value": "&lt;image&gt;\n..."}, {"from": "gpt", "value": ...}], "task"}</c>, with image paths relative to
/// the folder, and one grey 56x56 PNG per scene in <c>images/</c>. Every file is written atomically, the
/// images before the JSON that names them.
/// </summary>
public static class SceneSuiteExport
{
    public const string ImageFolderName = "images";

    public static ExportedSuite Write(SceneSuite suite, FashionMnist source, string folder)
    {
        folder = Path.GetFullPath(folder);
        var jsonFiles = new Dictionary<SceneSplit, string>();
        int imageCount = 0;
        foreach (var split in SceneSuite.Splits)
        {
            var scenes = suite.Scenes(split);
            for (int i = 0; i < scenes.Count; i++)
            {
                using var pixels = scenes[i].Render(source);
                byte[] png = EncodeGreyPng(pixels);
                AtomicFile.WriteAllBytes(Path.Combine(folder, ImagePath(split, i)), png);
                imageCount++;
            }
            jsonFiles[split] = Path.Combine(folder, $"{SceneSuite.SplitName(split)}.json");
            LlavaInstructionWriter.Write(jsonFiles[split], suite.Samples(split).Select(s => s.ToInstructionSample()), folder);
        }
        return new ExportedSuite(jsonFiles, Path.Combine(folder, ImageFolderName), imageCount);
    }

    /// <summary>A scene's image path relative to the export folder, with '/' as LLaVA's files write it.</summary>
    public static string ImagePath(SceneSplit split, int sceneIndex) => $"{ImageFolderName}/{SceneSuite.SplitName(split)}-{sceneIndex:D5}.png";

    /// <summary>A contiguous uint8 [H, W] (as <see cref="FashionScene.Render"/> returns) to an 8-bit greyscale PNG.</summary>
    static byte[] EncodeGreyPng(Tensor pixels)
    {
        var info = new SKImageInfo((int)pixels.shape[1], (int)pixels.shape[0], SKColorType.Gray8, SKAlphaType.Opaque);
        using var image = SKImage.FromPixelCopy(info, pixels.bytes.ToArray());
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
