using System.Text.Json;
using DualLora.IO;
using static TorchSharp.torch;

namespace DualLora.Data;

/// <summary>
/// A LLaVA instruction-data file: a JSON list of <c>{"id", "image" (optional), "conversations": [{"from":
/// "human"|"gpt", "value"}, ...]}</c>, as LLaVA's training files are written. Loading validates every
/// sample and checks that its image file exists, but decodes no image: <see cref="Image"/> does that
/// when a sample's pixels are needed, so a file of 100k samples loads without touching its images.
/// </summary>
public sealed class LlavaInstructionData
{
    /// <summary>The JSON file, as errors name it.</summary>
    public string File { get; }

    /// <summary>The folder image paths are resolved against: LLaVA's <c>--image_folder</c>, else the JSON file's folder.</summary>
    public string ImageFolder { get; }

    public IReadOnlyList<InstructionSample> Samples { get; }

    /// <summary>The samples left out in skip mode (empty otherwise: a bad sample is an error).</summary>
    public SkippedSamples Skipped { get; }

    LlavaInstructionData(string file, string imageFolder, IReadOnlyList<InstructionSample> samples, SkippedSamples skipped)
    {
        File = file;
        ImageFolder = imageFolder;
        Samples = samples;
        Skipped = skipped;
    }

    static readonly Dictionary<string, TurnRole> Roles = new() { ["human"] = TurnRole.Human, ["gpt"] = TurnRole.Gpt };

    /// <summary>
    /// Reads and validates <paramref name="file"/>. A bad sample is an <see cref="InstructionSampleException"/>
    /// naming the file, the sample id and the field, unless <paramref name="skipBadSamples"/>, which leaves it
    /// out and counts it in <see cref="Skipped"/>.
    /// </summary>
    public static LlavaInstructionData Load(string file, string? imageFolder = null, bool skipBadSamples = false)
    {
        var folder = Path.GetFullPath(imageFolder ?? Path.GetDirectoryName(Path.GetFullPath(file))!);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{file}: the image folder '{folder}' does not exist.");

        var samples = new List<InstructionSample>();
        var ids = new HashSet<string>();
        var skipped = new SkippedSamples();
        var elements = JsonObjectReader.ReadListFile(file);
        for (var index = 0; index < elements.Count; index++)
        {
            try
            {
                var sample = ReadSample(elements[index], index, folder);
                if (!ids.Add(sample.Id))
                    throw Refused(SampleFault.DuplicateId, elements[index], sample.Id, "id", $"is \"{sample.Id}\", which an earlier sample already has.");
                samples.Add(sample);
            }
            catch (InstructionSampleException refused) when (skipBadSamples)
            {
                skipped.Add(refused);
            }
        }
        return new LlavaInstructionData(file, folder, samples, skipped);
    }

    /// <summary>Decodes and preprocesses a sample's image; a missing or undecodable file is an error naming the data file, the sample and the image.</summary>
    public Tensor Image(InstructionSample sample, ImagePreprocessing preprocessing)
    {
        if (sample.ImagePath is null) throw new ArgumentException($"{File}: sample \"{sample.Id}\" is text-only; it has no image.");
        try
        {
            return preprocessing.Load(sample.ImagePath);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidFileException)
        {
            var fault = e is FileNotFoundException ? SampleFault.MissingImageFile : SampleFault.UndecodableImage;
            throw new InstructionSampleException(fault, File, sample.Id, $"field 'image': {e.Message}", e);
        }
    }

    static InstructionSample ReadSample(JsonObjectReader sample, int index, string folder)
    {
        var id = $"[{index}]";   // until the id itself is read
        try
        {
            id = sample.Kind("id") == JsonValueKind.Number ? sample.Long("id").ToString() : sample.String("id");
            var image = sample.OptionalString("image");
            var conversations = sample.Objects("conversations");
            var turns = conversations.Select(turn => new ConversationTurn(turn.Choice("from", Roles), turn.String("value"))).ToList();
            CheckTurns(sample, id, conversations, turns, hasImage: image is not null);

            string? imagePath = null;
            if (image is not null)
            {
                imagePath = Path.GetFullPath(Path.Combine(folder, image));
                if (!System.IO.File.Exists(imagePath))
                    throw Refused(SampleFault.MissingImageFile, sample, id, "image", $"is \"{image}\", and '{imagePath}' does not exist.");
            }

            // Extras: strings as written, anything else as its JSON text, detached from the parsed file.
            var extra = sample.UnreadFields().ToDictionary(
                field => field.Key,
                field => field.Value?.GetValueKind() == JsonValueKind.String ? field.Value.GetValue<string>() : field.Value?.ToJsonString() ?? "null");
            return new InstructionSample(id, imagePath, turns, extra);
        }
        catch (InvalidFileException e) when (e is not InstructionSampleException)
        {
            // The JSON helper's fault ("field ... is ..."), with the sample's id put after the file.
            throw new InstructionSampleException(SampleFault.MalformedField, sample.File, id, e.Fault, e);
        }
    }

    static void CheckTurns(JsonObjectReader sample, string id, IReadOnlyList<JsonObjectReader> conversations, List<ConversationTurn> turns, bool hasImage)
    {
        if (turns.Count == 0)
            throw Refused(SampleFault.WrongRoleOrder, sample, id, "conversations", "is empty; it needs a human turn and a gpt answer.");
        for (var i = 0; i < turns.Count; i++)
        {
            var expected = i % 2 == 0 ? TurnRole.Human : TurnRole.Gpt;
            if (turns[i].Role != expected)
                throw Refused(SampleFault.WrongRoleOrder, conversations[i], id, "from",
                    $"is \"{Name(turns[i].Role)}\" where a {Name(expected)} turn must be: turns alternate human, gpt, starting with human.");
            if (turns[i].IsAnswer && string.IsNullOrWhiteSpace(turns[i].Text))
                throw Refused(SampleFault.EmptyAnswer, conversations[i], id, "value", "is an empty answer.");
        }
        if (turns[^1].Role == TurnRole.Human)
            throw Refused(SampleFault.WrongRoleOrder, sample, id, "conversations", "ends with a human turn, which has no answer.");

        var placeholders = turns.Select(turn => Occurrences(turn.Text, InstructionSample.ImagePlaceholder)).ToList();
        var firstWith = placeholders.FindIndex(count => count > 0);
        if (!hasImage && firstWith >= 0)
            throw Refused(SampleFault.PlaceholderWithoutImage, conversations[firstWith], id, "value",
                $"has {InstructionSample.ImagePlaceholder} but the sample has no \"image\".");
        var firstLater = placeholders.FindIndex(1, count => count > 0);
        if (firstLater > 0)
            throw Refused(SampleFault.MisplacedPlaceholder, conversations[firstLater], id, "value",
                $"has {InstructionSample.ImagePlaceholder}, which belongs in the first human turn only.");
        if (hasImage && placeholders[0] != 1)
            throw placeholders[0] == 0
                ? Refused(SampleFault.MissingPlaceholder, conversations[0], id, "value", $"has no {InstructionSample.ImagePlaceholder} although the sample has an \"image\".")
                : Refused(SampleFault.MisplacedPlaceholder, conversations[0], id, "value", $"has {InstructionSample.ImagePlaceholder} {placeholders[0]} times; one image takes one placeholder.");
    }

    static InstructionSampleException Refused(SampleFault reason, JsonObjectReader at, string id, string field, string fault) =>
        new(reason, at.File, id, $"field '{at.FieldPath(field)}' {fault}");

    static string Name(TurnRole role) => role == TurnRole.Human ? "human" : "gpt";

    static int Occurrences(string text, string part)
    {
        var count = 0;
        for (var at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + part.Length, StringComparison.Ordinal))
            count++;
        return count;
    }
}
