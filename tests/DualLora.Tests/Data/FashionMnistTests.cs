using System.IO.Compression;
using DualLora.Data;
using DualLora.IO;
using DualLora.Runtime;
using TorchSharp;

namespace DualLora.Tests.Data;

public class FashionMnistTests
{
    const int Pixels = 28 * 28;

    /// <summary>Writes an idx file byte by byte as the format describes it, independently of the reader.</summary>
    static string WriteIdx(string path, byte dimensionCount, int[] dimensions, byte[] data, bool gzip)
    {
        using var buffer = new MemoryStream();
        buffer.Write([0, 0, 0x08, dimensionCount]);
        foreach (int d in dimensions) buffer.Write([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        buffer.Write(data);
        byte[] bytes = buffer.ToArray();
        if (gzip)
        {
            using var file = File.Create(path);
            using var compressor = new GZipStream(file, CompressionLevel.Optimal);
            compressor.Write(bytes);
        }
        else File.WriteAllBytes(path, bytes);
        return path;
    }

    static byte[] RandomPixels(int images, int seed)
    {
        var pixels = new byte[images * Pixels];
        new Random(seed).NextBytes(pixels);
        return pixels;
    }

    /// <summary>Writes train-images and train-labels (".gz" when gzip) with the given content.</summary>
    static (string Images, string Labels) WriteSplit(TempFolder temp, byte[] pixels, int imageCount, byte[] labels, bool gzip = true, int side = 28)
    {
        string suffix = gzip ? ".gz" : "";
        return (WriteIdx(temp.File("train-images-idx3-ubyte" + suffix), 3, [imageCount, side, side], pixels, gzip),
                WriteIdx(temp.File("train-labels-idx1-ubyte" + suffix), 1, [labels.Length], labels, gzip));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Three_written_images_read_back_to_exactly_their_pixels_and_labels(bool gzip)
    {
        using var temp = new TempFolder();
        byte[] pixels = RandomPixels(3, seed: 8);
        byte[] labels = [7, 0, 9];
        WriteSplit(temp, pixels, 3, labels, gzip);

        using var data = FashionMnist.Read(temp.Path, FashionMnistSplit.Train);

        Assert.Equal(3, data.Count);
        Assert.Equal(torch.ScalarType.Byte, data.Images.dtype);
        Assert.Equal([3L, 28, 28], data.Images.shape);
        Assert.Equal(pixels, data.Images.data<byte>().ToArray());
        Assert.Equal(torch.ScalarType.Int64, data.Labels.dtype);
        Assert.Equal([7L, 0, 9], data.Labels.data<long>().ToArray());
        using var pixel = data.Images[1, 5, 3];   // image 1, row 5, column 3: row-major order
        Assert.Equal(pixels[Pixels + 28 * 5 + 3], pixel.item<byte>());
    }

    [Fact]
    public void Gzip_is_told_from_the_content_not_the_name()
    {
        using var temp = new TempFolder();
        byte[] pixels = RandomPixels(2, seed: 3);
        string images = WriteIdx(temp.File("images.idx"), 3, [2, 28, 28], pixels, gzip: true);
        string labels = WriteIdx(temp.File("labels.gz"), 1, [2], [4, 5], gzip: false);

        using var data = FashionMnist.Read(images, labels, FashionMnistSplit.Test);

        Assert.Equal(pixels, data.Images.data<byte>().ToArray());
        Assert.Equal([4L, 5], data.Labels.data<long>().ToArray());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_wrong_magic_number_names_the_file_and_both_numbers(bool gzip)
    {
        using var temp = new TempFolder();
        var (_, labels) = WriteSplit(temp, RandomPixels(3, seed: 1), 3, [1, 2, 3], gzip);
        File.Copy(labels, temp.File("train-images-idx3-ubyte" + (gzip ? ".gz" : "")), overwrite: true);   // a labels file where the images should be

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Train));

        Assert.Contains(temp.File("train-images-idx3-ubyte"), e.Message);
        Assert.Contains("magic number 0x00000801", e.Message);
        Assert.Contains("expected 0x00000803", e.Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_truncated_header_names_the_file(bool gzip)
    {
        using var temp = new TempFolder();
        string images = WriteIdx(temp.File("images"), 3, [3], [], gzip);   // magic and one of three dimensions: 8 of 16 header bytes
        string labels = WriteIdx(temp.File("labels"), 1, [3], [1, 2, 3], gzip);

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(images, labels, FashionMnistSplit.Train));

        Assert.StartsWith(images + ": truncated header", e.Message);
        Assert.Contains("8 bytes", e.Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Truncated_data_names_the_file_and_how_much_is_missing(bool gzip)
    {
        using var temp = new TempFolder();
        byte[] twoAndAHalfImages = RandomPixels(3, seed: 2)[..(Pixels * 5 / 2)];
        var (images, _) = WriteSplit(temp, twoAndAHalfImages, 3, [1, 2, 3], gzip);

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Train));

        Assert.StartsWith(images + ": truncated", e.Message);
        Assert.Contains($"3 x 28 x 28 = {3 * Pixels} bytes", e.Message);
        Assert.Contains($"only {Pixels * 5 / 2} follow", e.Message);
    }

    [Theory]
    [InlineData(true, "more than a gzip file of")]
    [InlineData(false, "truncated: the header announces 2000000000 x 28 x 28 = 1568000000000 bytes")]
    public void A_header_announcing_more_than_the_file_holds_is_refused_before_allocating(bool gzip, string fault)
    {
        using var temp = new TempFolder();
        var (images, _) = WriteSplit(temp, RandomPixels(1, seed: 9), 2_000_000_000, [1], gzip);

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Train));

        Assert.StartsWith(images + ":", e.Message);
        Assert.Contains(fault, e.Message);
    }

    [Fact]
    public void A_cut_gzip_file_names_the_file()
    {
        using var temp = new TempFolder();
        var (images, _) = WriteSplit(temp, RandomPixels(3, seed: 4), 3, [1, 2, 3]);
        byte[] compressed = File.ReadAllBytes(images);
        File.WriteAllBytes(images, compressed[..(compressed.Length / 2)]);

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Train));

        Assert.StartsWith(images + ":", e.Message);
    }

    [Fact]
    public void Bytes_beyond_what_the_header_announces_name_the_file()
    {
        using var temp = new TempFolder();
        var (images, _) = WriteSplit(temp, RandomPixels(3, seed: 5), 2, [1, 2], gzip: false);   // header says 2 images, 3 follow

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Train));

        Assert.StartsWith($"{images}: {Pixels} bytes after the {2 * Pixels} bytes of data", e.Message);
    }

    [Fact]
    public void Image_and_label_counts_must_agree()
    {
        using var temp = new TempFolder();
        var (images, labels) = WriteSplit(temp, RandomPixels(3, seed: 6), 3, [1, 2]);

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Train));

        Assert.Equal($"{labels}: 2 labels, but {images} holds 3 images; the two files must agree.", e.Message);
    }

    [Fact]
    public void Images_of_another_size_are_refused()
    {
        using var temp = new TempFolder();
        var (images, _) = WriteSplit(temp, new byte[32 * 32], 1, [0], side: 32);

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Train));

        Assert.StartsWith($"{images}: images of 32x32 pixels", e.Message);
    }

    [Fact]
    public void A_label_outside_the_ten_classes_is_refused()
    {
        using var temp = new TempFolder();
        var (_, labels) = WriteSplit(temp, RandomPixels(3, seed: 7), 3, [9, 10, 0]);

        var e = Assert.Throws<InvalidFileException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Train));

        Assert.StartsWith($"{labels}: label 10 at index 1", e.Message);
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        using var temp = new TempFolder();
        WriteIdx(temp.File("t10k-images-idx3-ubyte.gz"), 3, [1, 28, 28], new byte[Pixels], gzip: true);

        var e = Assert.Throws<FileNotFoundException>(() => FashionMnist.Read(temp.Path, FashionMnistSplit.Test));

        Assert.StartsWith(temp.File("t10k-labels-idx1-ubyte.gz") + ": does not exist", e.Message);
        Assert.Equal(temp.File("t10k-labels-idx1-ubyte.gz"), e.FileName);
    }

    [Fact]
    public void A_missing_training_split_says_which_key_and_which_package()
    {
        using var temp = new TempFolder();
        string absent = temp.File("no-fashion-mnist-here");
        var environment = new RuntimeEnvironment(temp.File(RuntimeEnvironment.FileName), Backend.Cpu, "cpu", 0, 0, Profile.Smoke,
            new DataPaths(absent, temp.Path, temp.Path));

        var e = Assert.Throws<FileNotFoundException>(() => FashionMnist.Load(environment, FashionMnistSplit.Train));

        Assert.StartsWith(absent + ": the Fashion-MNIST training split", e.Message);
        Assert.Contains($"'data.fashion_mnist' of {environment.SourceFile}", e.Message);
        Assert.Contains("dataset-fashion-mnist", e.Message);
    }

    [Fact]
    public void The_shipped_test_split_holds_10000_images_1000_of_each_class()
    {
        using var data = FashionMnist.Load(RuntimeEnvironment.Find(AppContext.BaseDirectory), FashionMnistSplit.Test);

        Assert.Equal([10_000L, 28, 28], data.Images.shape);
        using var perClass = torch.bincount(data.Labels, minlength: 10);
        Assert.Equal(Enumerable.Repeat(1_000L, 10), perClass.data<long>().ToArray());
        // The test split's first labels as Fashion-MNIST's own loaders report them: Ankle boot, Pullover, Trouser, Trouser, Shirt.
        using var firstLabels = data.Labels[..5];
        Assert.Equal([9L, 2, 1, 1, 6], firstLabels.data<long>().ToArray());
        Assert.Equal("Ankle boot", FashionMnist.ClassNames[9]);
    }

    [DebianFashionMnistFact]
    public void The_debian_training_split_holds_60000_images_6000_of_each_class()
    {
        using var data = FashionMnist.Load(RuntimeEnvironment.Find(AppContext.BaseDirectory), FashionMnistSplit.Train);

        Assert.Equal([60_000L, 28, 28], data.Images.shape);
        using var perClass = torch.bincount(data.Labels, minlength: 10);
        Assert.Equal(Enumerable.Repeat(6_000L, 10), perClass.data<long>().ToArray());
        using var firstLabels = data.Labels[..5];   // the training split's first labels as Fashion-MNIST's loaders report them
        Assert.Equal([9L, 0, 0, 3, 0], firstLabels.data<long>().ToArray());
    }

    /// <summary>Runs only where the training split is installed (Debian's dataset-fashion-mnist, at environment.json's data.fashion_mnist).</summary>
    sealed class DebianFashionMnistFactAttribute : FactAttribute
    {
        public DebianFashionMnistFactAttribute()
        {
            var environment = RuntimeEnvironment.Find(AppContext.BaseDirectory);
            string images = Path.Combine(environment.Data.FashionMnist, "train-images-idx3-ubyte.gz");
            if (!File.Exists(images) && !File.Exists(images[..^3]))
                Skip = $"the training split is not installed: {images} is absent (environment.json key data.fashion_mnist; " +
                       "install it with: sudo apt-get install dataset-fashion-mnist)";
        }
    }
}
