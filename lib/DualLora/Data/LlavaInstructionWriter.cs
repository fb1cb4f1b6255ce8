using System.Text.Encodings.Web;
using System.Text.Json;
using DualLora.IO;

namespace DualLora.Data;

/// <summary>
/// Writes instruction samples as a LLaVA JSON file, the format <see cref="LlavaInstructionData.Load"/> reads:
/// a list of <c>{"id", "image", "conversations": [{"from", "value"}, ...], ...extra fields}</c>. So a subset of a
/// data set (one task's samples, say) becomes a file a training run can take. Written atomically.
/// </summary>
public static class LlavaInstructionWriter
{
    // LLaVA's files spell the placeholder as "<image>", not as the escaped "\u003Cimage\u003E" the default encoder writes.
    static readonly JsonWriterOptions WriterOptions = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Writes <paramref name="samples"/> to <paramref name="file"/>. A full image path is written relative to
    /// <paramref name="imageFolder"/> (the folder the file will be loaded with), with '/'; a relative one is taken as
    /// relative to it already and written as it is. Extra fields are written as strings (as <see cref="InstructionSample.Extra"/> holds them).
    /// </summary>
    public static void Write(string file, IEnumerable<InstructionSample> samples, string imageFolder)
    {
        imageFolder = Path.GetFullPath(imageFolder);
        AtomicFile.Write(file, stream =>
        {
            using var json = new Utf8JsonWriter(stream, WriterOptions);
            json.WriteStartArray();
            foreach (var sample in samples)
            {
                json.WriteStartObject();
                json.WriteString("id", sample.Id);
                if (sample.ImagePath is { } image)
                    json.WriteString("image", (Path.IsPathRooted(image) ? Path.GetRelativePath(imageFolder, image) : image).Replace(Path.DirectorySeparatorChar, '/'));
                json.WriteStartArray("conversations");
                foreach (var turn in sample.Turns)
                {
                    json.WriteStartObject();
                    json.WriteString("from", turn.Role == TurnRole.Human ? "human" : "gpt");
                    json.WriteString("value", turn.Text);
                    json.WriteEndObject();
                }
                json.WriteEndArray();
                foreach (var (field, value) in sample.Extra) json.WriteString(field, value);
                json.WriteEndObject();
            }
            json.WriteEndArray();
        });
    }
}
