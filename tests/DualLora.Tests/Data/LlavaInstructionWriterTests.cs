using DualLora.Data;
using SkiaSharp;

namespace DualLora.Tests.Data;

public sealed class LlavaInstructionWriterTests
{
    [Fact]
    public void Written_samples_load_back_as_the_same_samples()
    {
        using var folder = new TempFolder();
        string images = folder.File("images");
        Directory.CreateDirectory(Path.Combine(images, "scenes"));
        using (var bitmap = new SKBitmap(8, 8, SKColorType.Gray8, SKAlphaType.Opaque))
        using (var png = bitmap.Encode(SKEncodedImageFormat.Png, 100))
        {
            File.WriteAllBytes(Path.Combine(images, "scenes", "a.png"), png.ToArray());
            File.WriteAllBytes(Path.Combine(images, "b.png"), png.ToArray());
        }
        InstructionSample Sample(string id, string? image, Dictionary<string, string> extra, params (TurnRole, string)[] turns) =>
            new(id, image, turns.Select(t => new ConversationTurn(t.Item1, t.Item2)).ToList(), extra);
        var samples = new[]
        {
            Sample("multi", Path.Combine(images, "scenes", "a.png"), new() { ["task"] = "count", ["note"] = "\"quoted\" é <b>" },
                (TurnRole.Human, "<image>\nHow many shoes?"), (TurnRole.Gpt, "two"), (TurnRole.Human, "And bags?"), (TurnRole.Gpt, "one")),
            Sample("text-only", null, new(), (TurnRole.Human, "Say yes."), (TurnRole.Gpt, "yes")),
            Sample("relative", "b.png", new() { ["task"] = "name" }, (TurnRole.Human, "What is it?\n<image>"), (TurnRole.Gpt, "a bag")),
        };
        string file = folder.File("subset/data.json");

        LlavaInstructionWriter.Write(file, samples, images);
        var loaded = LlavaInstructionData.Load(file, images);

        Assert.Equal(samples.Length, loaded.Samples.Count);
        foreach (var (written, read) in samples.Zip(loaded.Samples))
        {
            Assert.Equal(written.Id, read.Id);
            Assert.Equal(written.ImagePath is null ? null : Path.GetFullPath(written.ImagePath, images), read.ImagePath);
            Assert.Equal(written.Turns, read.Turns);
            Assert.Equal(written.Extra.OrderBy(e => e.Key), read.Extra.OrderBy(e => e.Key));
        }
        Assert.Contains("\"image\": \"scenes/a.png\"", File.ReadAllText(file));   // relative, with '/', and <image> unescaped
        Assert.Contains("<image>", File.ReadAllText(file));
    }
}
