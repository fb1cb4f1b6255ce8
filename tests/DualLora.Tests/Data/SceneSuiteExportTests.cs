using DualLora.Data;
using DualLora.IO;
using SkiaSharp;

namespace DualLora.Tests.Data;

public class SceneSuiteExportTests(ShippedFashionMnist fashion) : IClassFixture<ShippedFashionMnist>
{
    [Fact]
    public void The_export_reads_back_to_the_same_samples_and_the_scenes_pixels()
    {
        using var temp = new TempFolder();
        var suite = SceneSuite.Build(fashion.Source, new SceneSuiteOptions(Seed: 3, TrainingScenes: 12, ValidationScenes: 4, EvaluationScenes: 5));
        var exported = SceneSuiteExport.Write(suite, fashion.Source, temp.Path);

        Assert.Equal(21, exported.ImageCount);
        Assert.Equal(21, Directory.GetFiles(temp.File("images"), "*.png").Length);
        Assert.Equal(["evaluation.json", "training.json", "validation.json"], Directory.GetFiles(temp.Path).Select(Path.GetFileName).Order());
        foreach (var split in SceneSuite.Splits)
        {
            string file = exported.JsonFiles[split];
            Assert.Contains("\"<image>\\n", File.ReadAllText(file));   // the placeholder as LLaVA's files spell it
            var read = JsonObjectReader.ReadListFile(file);
            var samples = suite.Samples(split);
            Assert.Equal(samples.Count, read.Count);
            for (int i = 0; i < samples.Count; i++)
            {
                var json = read[i];
                Assert.Equal(samples[i].Id, json.String("id"));
                Assert.Equal(samples[i].Task, json.String("task"));
                string image = json.String("image");
                Assert.Equal($"images/{SceneSuite.SplitName(split)}-{samples[i].SceneIndex:D5}.png", image);
                var turns = json.Objects("conversations");
                Assert.Equal(2, turns.Count);
                Assert.Equal("human", turns[0].String("from"));
                Assert.Equal("<image>\n" + samples[i].Instruction, turns[0].String("value"));
                Assert.Equal("gpt", turns[1].String("from"));
                Assert.Equal(samples[i].Answer, turns[1].String("value"));
                json.RejectUnknownFields();
            }
            for (int scene = 0; scene < suite.Scenes(split).Count; scene++)
            {
                using var pixels = suite.Scenes(split)[scene].Render(fashion.Source);
                Assert.Equal(pixels.bytes.ToArray(), DecodeGrey(Path.Combine(temp.Path, SceneSuiteExport.ImagePath(split, scene))));
            }
        }
    }

    [Fact]
    public void The_exported_folder_reads_back_through_the_LLaVA_reader_to_the_same_samples_and_pixels()
    {
        using var temp = new TempFolder();
        var suite = SceneSuite.Build(fashion.Source, new SceneSuiteOptions(Seed: 4, TrainingScenes: 6, ValidationScenes: 3, EvaluationScenes: 3));
        var exported = SceneSuiteExport.Write(suite, fashion.Source, temp.Path);
        var smallModel = ImagePreprocessing.Grey(56);
        foreach (var split in SceneSuite.Splits)
        {
            var data = LlavaInstructionData.Load(exported.JsonFiles[split]);
            var samples = suite.Samples(split);
            Assert.Equal(samples.Count, data.Samples.Count);
            for (int i = 0; i < samples.Count; i++)
            {
                var read = data.Samples[i];
                Assert.Equal(samples[i].Id, read.Id);
                Assert.Equal(Path.Combine(temp.Path, "images", $"{SceneSuite.SplitName(split)}-{samples[i].SceneIndex:D5}.png"), read.ImagePath);
                Assert.Equal([new ConversationTurn(TurnRole.Human, "<image>\n" + samples[i].Instruction), new ConversationTurn(TurnRole.Gpt, samples[i].Answer)], read.Turns);
                Assert.Equal(new Dictionary<string, string> { ["task"] = samples[i].Task }, read.Extra);
            }
            foreach (var first in data.Samples.Zip(samples).Where(pair => pair.Second.Task == SceneTasks.All[0].Name))
            {
                using var scope = TorchSharp.torch.NewDisposeScope();
                var pixels = suite.Scenes(split)[first.Second.SceneIndex].Render(fashion.Source);
                var image = data.Image(first.First, smallModel);
                Assert.Equal(new long[] { 1, 56, 56 }, image.shape);
                TensorAssert.BitEqual(pixels, (image[0] * 255).round().to_type(TorchSharp.torch.ScalarType.Byte), first.First.Id);
            }
        }
    }

    static byte[] DecodeGrey(string png)
    {
        using var codec = SKCodec.Create(png);
        Assert.Equal(SKEncodedImageFormat.Png, codec.EncodedFormat);
        Assert.Equal(new SKSizeI(56, 56), codec.Info.Size);
        using var bitmap = new SKBitmap(new SKImageInfo(56, 56, SKColorType.Gray8, SKAlphaType.Opaque));
        Assert.Equal(SKCodecResult.Success, codec.GetPixels(bitmap.Info, bitmap.GetPixels()));
        return bitmap.Bytes;
    }
}
