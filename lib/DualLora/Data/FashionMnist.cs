using DualLora.IO;
using DualLora.Runtime;
using TorchSharp;

namespace DualLora.Data;

/// <summary>
/// One split of Fashion-MNIST (Zalando SE, MIT licence): 28x28 greyscale images of ten kinds of clothing,
/// read from the idx files <c>{train,t10k}-images-idx3-ubyte</c> and <c>{train,t10k}-labels-idx1-ubyte</c>
/// (gzip or plain; see <see cref="IdxFile"/>).
/// <para>
/// Images stay uint8 [N, 28, 28]: the 60,000 training images are 47 MB as bytes and would be 188 MB as
/// float32, and the bytes are the exact pixels, so scenes built from them can be compared bit for bit.
/// Convert per batch (<c>images.to_type(torch.float32) / 255</c>). Labels are int64 [N], the type
/// cross-entropy and indexing take.
/// </para>
/// </summary>
public sealed class FashionMnist : IDisposable
{
    public const int ImageSize = 28;
    const uint ImagesMagic = 0x00000803;
    const uint LabelsMagic = 0x00000801;

    /// <summary>The test split ships with the project in this folder, relative to the folder of environment.json.</summary>
    public static readonly string ShippedFolder = Path.Combine("data", "fashion-mnist");

    /// <summary>The class names by label, as Fashion-MNIST's authors name them.</summary>
    public static readonly IReadOnlyList<string> ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    public FashionMnistSplit Split { get; }
    /// <summary>uint8 [N, 28, 28], pixel values 0 (background) to 255.</summary>
    public torch.Tensor Images { get; }
    /// <summary>int64 [N], each 0 to 9, an index into <see cref="ClassNames"/>.</summary>
    public torch.Tensor Labels { get; }
    public string ImagesFile { get; }
    public string LabelsFile { get; }
    public int Count => (int)Labels.shape[0];

    FashionMnist(FashionMnistSplit split, torch.Tensor images, torch.Tensor labels, string imagesFile, string labelsFile)
    {
        Split = split; Images = images; Labels = labels; ImagesFile = imagesFile; LabelsFile = labelsFile;
    }

    /// <summary>
    /// The split where the project keeps it: the test split from <see cref="ShippedFolder"/> (nothing to
    /// install), the training split from the folder of <c>data.fashion_mnist</c> in environment.json
    /// (Debian's <c>dataset-fashion-mnist</c>), with an error saying what to install when it is absent.
    /// </summary>
    public static FashionMnist Load(RuntimeEnvironment environment, FashionMnistSplit split)
    {
        if (split == FashionMnistSplit.Test)
            return Read(Path.Combine(Path.GetDirectoryName(environment.SourceFile)!, ShippedFolder), split);

        string folder = environment.Data.FashionMnist;
        if (FindFile(folder, FileName(split, "images-idx3")) == null)
            throw new FileNotFoundException(
                $"{folder}: the Fashion-MNIST training split ({FileName(split, "images-idx3")}.gz, 60,000 images) is not there. " +
                $"The folder is key 'data.fashion_mnist' of {environment.SourceFile}. Install Debian's dataset-fashion-mnist " +
                "(sudo apt-get install dataset-fashion-mnist; files under /usr/share/datasets/fashion-mnist) or point the key at a folder " +
                $"holding the idx files. The test split (10,000 images) ships in {ShippedFolder} and needs nothing installed.");
        return Read(folder, split);
    }

    /// <summary>Reads a split from any folder holding its two idx files, gzip (<c>.gz</c>) or plain.</summary>
    public static FashionMnist Read(string folder, FashionMnistSplit split)
    {
        string full = Path.GetFullPath(folder);
        return Read(RequireFile(full, FileName(split, "images-idx3")), RequireFile(full, FileName(split, "labels-idx1")), split);
    }

    /// <summary>Reads a split from its images and labels files, checking that they agree in count and hold Fashion-MNIST's sizes and labels.</summary>
    public static FashionMnist Read(string imagesFile, string labelsFile, FashionMnistSplit split)
    {
        imagesFile = Path.GetFullPath(imagesFile);
        labelsFile = Path.GetFullPath(labelsFile);
        var images = IdxFile.ReadBytes(imagesFile, ImagesMagic);
        try
        {
            if (images.shape[1] != ImageSize || images.shape[2] != ImageSize)
                throw new InvalidFileException(imagesFile,
                    $"images of {images.shape[1]}x{images.shape[2]} pixels; Fashion-MNIST's are {ImageSize}x{ImageSize}.");
            using var rawLabels = IdxFile.ReadBytes(labelsFile, LabelsMagic);
            if (rawLabels.shape[0] != images.shape[0])
                throw new InvalidFileException(labelsFile,
                    $"{rawLabels.shape[0]} labels, but {imagesFile} holds {images.shape[0]} images; the two files must agree.");
            int outOfRange = rawLabels.bytes.IndexOfAnyInRange((byte)ClassNames.Count, byte.MaxValue);
            if (outOfRange >= 0)
                throw new InvalidFileException(labelsFile,
                    $"label {rawLabels.bytes[outOfRange]} at index {outOfRange}; Fashion-MNIST's labels are 0 to {ClassNames.Count - 1}.");
            return new FashionMnist(split, images, rawLabels.to_type(torch.ScalarType.Int64), imagesFile, labelsFile);
        }
        catch
        {
            images.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }

    static string FileName(FashionMnistSplit split, string kind) =>
        $"{(split == FashionMnistSplit.Train ? "train" : "t10k")}-{kind}-ubyte";

    /// <summary>The gzip file as Debian and the upstream project ship it, else the plain one.</summary>
    static string? FindFile(string folder, string name) =>
        new[] { name + ".gz", name }.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists);

    static string RequireFile(string folder, string name) => FindFile(folder, name)
        ?? throw new FileNotFoundException($"{Path.Combine(folder, name)}.gz: does not exist (nor does the plain {name}).", Path.Combine(folder, name + ".gz"));
}
