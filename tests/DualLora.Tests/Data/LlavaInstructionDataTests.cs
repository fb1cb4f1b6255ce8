using System.Diagnostics;
using System.Text;
using DualLora.Data;
using DualLora.IO;
using SkiaSharp;

namespace DualLora.Tests.Data;

public sealed class LlavaInstructionDataTests
{
    static void WritePng(string path, byte grey)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(56, 56, SKColorType.Gray8, SKAlphaType.Opaque);
        bitmap.Erase(new SKColor(grey, grey, grey));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    const string HandWritten = """
        [
          {"id": "multi", "image": "scenes/a.png", "task": "count",
           "conversations": [
             {"from": "human", "value": "<image>\nHow many shoes?"},
             {"from": "gpt", "value": "Two."},
             {"from": "human", "value": "And bags?"},
             {"from": "gpt", "value": "One."}]},
          {"id": "text-only", "task": "yes-no",
           "conversations": [{"from": "human", "value": "Say yes."}, {"from": "gpt", "value": "Yes."}]},
          {"id": 17, "image": "b.png", "task": "position", "difficulty": 2, "tags": ["grid", "2x2"],
           "conversations": [{"from": "human", "value": "What is at the top left?\n<image>"}, {"from": "gpt", "value": "A shirt."}]}
        ]
        """;

    [Fact]
    public void A_hand_written_file_reads_to_exactly_its_samples()
    {
        using var folder = new TempFolder();
        WritePng(folder.File("scenes/a.png"), 10);
        WritePng(folder.File("b.png"), 20);
        var file = folder.File("train.json");
        File.WriteAllText(file, HandWritten);

        var data = LlavaInstructionData.Load(file);

        Assert.Equal(folder.Path, data.ImageFolder);
        Assert.Equal(0, data.Skipped.Count);
        Assert.Equal(["multi", "text-only", "17"], data.Samples.Select(s => s.Id));

        var multi = data.Samples[0];
        Assert.Equal(folder.File("scenes/a.png"), multi.ImagePath);
        Assert.Equal(
            [new(TurnRole.Human, "<image>\nHow many shoes?"), new(TurnRole.Gpt, "Two."), new(TurnRole.Human, "And bags?"), new ConversationTurn(TurnRole.Gpt, "One.")],
            multi.Turns);
        Assert.Equal([false, true, false, true], multi.Turns.Select(t => t.IsAnswer));
        Assert.Equal(new Dictionary<string, string> { ["task"] = "count" }, multi.Extra);

        var textOnly = data.Samples[1];
        Assert.Null(textOnly.ImagePath);
        Assert.False(textOnly.HasImage);
        Assert.Equal([new(TurnRole.Human, "Say yes."), new ConversationTurn(TurnRole.Gpt, "Yes.")], textOnly.Turns);
        Assert.Equal(new Dictionary<string, string> { ["task"] = "yes-no" }, textOnly.Extra);

        var placeholderAfter = data.Samples[2];
        Assert.Equal(folder.File("b.png"), placeholderAfter.ImagePath);
        Assert.Equal([new(TurnRole.Human, "What is at the top left?\n<image>"), new ConversationTurn(TurnRole.Gpt, "A shirt.")], placeholderAfter.Turns);
        Assert.Equal(new Dictionary<string, string> { ["task"] = "position", ["difficulty"] = "2", ["tags"] = """["grid","2x2"]""" }, placeholderAfter.Extra);
    }

    [Fact]
    public void Image_paths_resolve_against_the_image_folder_when_one_is_given()
    {
        using var folder = new TempFolder();
        var images = Path.Combine(folder.Path, "images");
        WritePng(Path.Combine(images, "scenes/a.png"), 10);
        WritePng(Path.Combine(images, "b.png"), 20);
        var file = folder.File("json/train.json");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, HandWritten);

        var data = LlavaInstructionData.Load(file, imageFolder: images);

        Assert.Equal(Path.Combine(images, "scenes/a.png"), data.Samples[0].ImagePath);
        Assert.Equal(Path.Combine(images, "b.png"), data.Samples[2].ImagePath);
        // Without the folder the JSON file's own folder is searched, which holds no images.
        var error = Assert.Throws<InstructionSampleException>(() => LlavaInstructionData.Load(file));
        Assert.Equal(SampleFault.MissingImageFile, error.Reason);
    }

    [Fact]
    public void Images_are_decoded_only_when_read_and_an_undecodable_one_names_the_file_the_sample_and_the_field()
    {
        using var folder = new TempFolder();
        WritePng(folder.File("scenes/a.png"), 51);
        File.WriteAllText(folder.File("b.png"), "not a png");
        var file = folder.File("train.json");
        File.WriteAllText(file, HandWritten);
        var data = LlavaInstructionData.Load(file);
        var preprocessing = ImagePreprocessing.Grey(56);

        using var pixels = data.Image(data.Samples[0], preprocessing);
        Assert.Equal([1L, 56, 56], pixels.shape);
        Assert.Equal(51 / 255f, pixels[0, 10, 10].item<float>());

        var error = Assert.Throws<InstructionSampleException>(() => data.Image(data.Samples[2], preprocessing));
        Assert.Equal(SampleFault.UndecodableImage, error.Reason);
        Assert.Contains(file, error.Message);
        Assert.Contains("sample \"17\"", error.Message);
        Assert.Contains("field 'image'", error.Message);
        Assert.Contains(folder.File("b.png"), error.Message);

        Assert.Throws<ArgumentException>(() => data.Image(data.Samples[1], preprocessing));
    }

    const string Good = """{"id": "good", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A bag."}]}""";

    public static TheoryData<string, string, SampleFault, string, string> BadSamples => new()
    {
        { "missing image file", """{"id": "bad", "image": "nowhere.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A bag."}]}""",
          SampleFault.MissingImageFile, "bad", "[1].image" },
        { "missing placeholder", """{"id": "bad", "image": "a.png", "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "A bag."}]}""",
          SampleFault.MissingPlaceholder, "bad", "[1].conversations[0].value" },
        { "placeholder without image", """{"id": "bad", "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A bag."}]}""",
          SampleFault.PlaceholderWithoutImage, "bad", "[1].conversations[0].value" },
        { "placeholder in a later human turn", """{"id": "bad", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A bag."}, {"from": "human", "value": "<image> again?"}, {"from": "gpt", "value": "Yes."}]}""",
          SampleFault.MisplacedPlaceholder, "bad", "[1].conversations[2].value" },
        { "placeholder only in a later human turn", """{"id": "bad", "image": "a.png", "conversations": [{"from": "human", "value": "Hello."}, {"from": "gpt", "value": "Hi."}, {"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A bag."}]}""",
          SampleFault.MisplacedPlaceholder, "bad", "[1].conversations[2].value" },
        { "placeholder in an answer", """{"id": "bad", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A <image>."}]}""",
          SampleFault.MisplacedPlaceholder, "bad", "[1].conversations[1].value" },
        { "two placeholders", """{"id": "bad", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nWhat? <image>"}, {"from": "gpt", "value": "A bag."}]}""",
          SampleFault.MisplacedPlaceholder, "bad", "[1].conversations[0].value" },
        { "starts with gpt", """{"id": "bad", "conversations": [{"from": "gpt", "value": "A bag."}, {"from": "human", "value": "What?"}]}""",
          SampleFault.WrongRoleOrder, "bad", "[1].conversations[0].from" },
        { "two human turns in a row", """{"id": "bad", "conversations": [{"from": "human", "value": "What?"}, {"from": "human", "value": "Well?"}, {"from": "gpt", "value": "A bag."}]}""",
          SampleFault.WrongRoleOrder, "bad", "[1].conversations[1].from" },
        { "ends with a human turn", """{"id": "bad", "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "A bag."}, {"from": "human", "value": "Well?"}]}""",
          SampleFault.WrongRoleOrder, "bad", "[1].conversations" },
        { "no turns", """{"id": "bad", "conversations": []}""",
          SampleFault.WrongRoleOrder, "bad", "[1].conversations" },
        { "empty answer", """{"id": "bad", "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "  "}]}""",
          SampleFault.EmptyAnswer, "bad", "[1].conversations[1].value" },
        { "duplicate id", Good, SampleFault.DuplicateId, "good", "[1].id" },
        { "unknown role", """{"id": "bad", "conversations": [{"from": "human", "value": "What?"}, {"from": "bot", "value": "A bag."}]}""",
          SampleFault.MalformedField, "bad", "[1].conversations[1].from" },
        { "missing value", """{"id": "bad", "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt"}]}""",
          SampleFault.MalformedField, "bad", "[1].conversations[1].value" },
        { "image not a string", """{"id": "bad", "image": 3, "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "A bag."}]}""",
          SampleFault.MalformedField, "bad", "[1].image" },
        { "missing id", """{"conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "A bag."}]}""",
          SampleFault.MalformedField, "[1]", "[1].id" },
    };

    [Theory]
    [MemberData(nameof(BadSamples))]
    public void A_bad_sample_is_an_error_naming_the_file_the_sample_id_and_the_field(string why, string badSample, SampleFault fault, string id, string field)
    {
        using var folder = new TempFolder();
        WritePng(folder.File("a.png"), 0);
        var file = folder.File("train.json");
        File.WriteAllText(file, $"[{Good},\n{badSample}]");

        var error = Assert.Throws<InstructionSampleException>(() => LlavaInstructionData.Load(file));

        Assert.True(fault == error.Reason, $"{why}: {error.Reason}, expected {fault} ({error.Message})");
        Assert.Equal(id, error.SampleId);
        Assert.StartsWith($"{file}: sample \"{id}\": field '{field}' ", error.Message);

        var skipping = LlavaInstructionData.Load(file, skipBadSamples: true);
        Assert.Equal(["good"], skipping.Samples.Select(s => s.Id));
        Assert.Equal(new Dictionary<SampleFault, int> { [fault] = 1 }, skipping.Skipped.Counts);
    }

    [Fact]
    public void Skip_mode_counts_the_skipped_samples_per_fault_with_the_first_ids()
    {
        using var folder = new TempFolder();
        WritePng(folder.File("a.png"), 0);
        var file = folder.File("train.json");
        string Sample(string id, string image, string answer) =>
            $$"""{"id": "{{id}}", "image": "{{image}}", "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "{{answer}}"}]}""";
        var samples = new List<string> { Sample("ok1", "a.png", "A bag.") };
        samples.AddRange(Enumerable.Range(0, 7).Select(i => Sample($"lost{i}", $"lost{i}.png", "A bag.")));
        samples.Add(Sample("mute", "a.png", ""));
        samples.Add(Sample("ok1", "a.png", "Again."));
        samples.Add(Sample("ok2", "a.png", "A shoe."));
        File.WriteAllText(file, $"[{string.Join(",\n", samples)}]");

        var data = LlavaInstructionData.Load(file, skipBadSamples: true);

        Assert.Equal(["ok1", "ok2"], data.Samples.Select(s => s.Id));
        Assert.Equal(9, data.Skipped.Count);
        Assert.Equal(new Dictionary<SampleFault, int> { [SampleFault.MissingImageFile] = 7, [SampleFault.EmptyAnswer] = 1, [SampleFault.DuplicateId] = 1 }, data.Skipped.Counts);
        Assert.Equal(["lost0", "lost1", "lost2", "lost3", "lost4"], data.Skipped.FirstIds(SampleFault.MissingImageFile));
        Assert.Equal(["mute"], data.Skipped.FirstIds(SampleFault.EmptyAnswer));
        Assert.Empty(data.Skipped.FirstIds(SampleFault.WrongRoleOrder));
        Assert.StartsWith($"{file}: sample \"lost0\": field '[1].image' ", data.Skipped.FirstMessage(SampleFault.MissingImageFile));
        Assert.Equal(
            $"9 samples skipped:{Environment.NewLine}  MissingImageFile: 7 (first ids: lost0, lost1, lost2, lost3, lost4)" +
            $"{Environment.NewLine}  EmptyAnswer: 1 (first ids: mute){Environment.NewLine}  DuplicateId: 1 (first ids: ok1)",
            data.Skipped.ToString());
    }

    [Fact]
    public void A_file_that_is_not_a_list_or_not_json_is_an_error_naming_it()
    {
        using var folder = new TempFolder();
        var file = folder.File("train.json");
        File.WriteAllText(file, """{"id": "x"}""");
        Assert.StartsWith($"{file}: ", Assert.Throws<InvalidFileException>(() => LlavaInstructionData.Load(file)).Message);
        File.WriteAllText(file, "[{\"id\": ");
        Assert.StartsWith($"{file}: ", Assert.Throws<InvalidFileException>(() => LlavaInstructionData.Load(file)).Message);
    }

    [Fact]
    public void A_file_of_100k_samples_loads_without_decoding_any_image()
    {
        using var folder = new TempFolder();
        // The images are not decodable: loading succeeds only because it checks that they exist and decodes none.
        for (var i = 0; i < 10; i++) File.WriteAllText(folder.File($"img{i}.png"), "not a png");
        var json = new StringBuilder("[");
        for (var i = 0; i < 100_000; i++)
        {
            if (i > 0) json.Append(",\n");
            json.Append(i % 5 == 0
                ? $$"""{"id": "s{{i}}", "task": "chat", "conversations": [{"from": "human", "value": "Say {{i}}."}, {"from": "gpt", "value": "{{i}}"}]}"""
                : $$"""{"id": "s{{i}}", "image": "img{{i % 10}}.png", "task": "count", "conversations": [{"from": "human", "value": "<image>\nHow many?"}, {"from": "gpt", "value": "{{i % 4}}"}, {"from": "human", "value": "Sure?"}, {"from": "gpt", "value": "Yes."}]}""");
        }
        var file = folder.File("big.json");
        File.WriteAllText(file, json.Append(']').ToString());

        var clock = Stopwatch.StartNew();
        var data = LlavaInstructionData.Load(file);
        clock.Stop();

        Assert.Equal(100_000, data.Samples.Count);
        Assert.Equal(80_000, data.Samples.Count(s => s.HasImage));
        Assert.Equal("3", data.Samples[99_999].Turns[1].Text);
        // Not a speed measurement (that is a benchmark's job): a bound far above the few seconds it takes,
        // which only quadratic work in the number of samples would cross.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"loading took {clock.Elapsed}");
        var error = Assert.Throws<InstructionSampleException>(() => data.Image(data.Samples[1], ImagePreprocessing.Grey(56)));
        Assert.Equal(SampleFault.UndecodableImage, error.Reason);
    }
}
