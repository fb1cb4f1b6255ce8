using System.Text.Json;
using System.Text.Json.Nodes;

namespace DualLora.IO;

/// <summary>
/// JSON read as RFC 8259 text for a file the library did not write: UTF-8 (an invalid byte is an error, not a
/// replacement character), no key twice in one object (System.Text.Json would keep the last, or throw an
/// exception that names no file), strings that are valid Unicode (no lone surrogate escape), at most 64 levels
/// deep. Every fault is an <see cref="InvalidFileException"/> naming the file, with the key where one is at fault.
/// </summary>
public static class StrictJson
{
    /// <summary>Reads a whole file; a missing file is a <see cref="FileNotFoundException"/> naming it.</summary>
    public static JsonNode? ReadFile(string file, bool allowComments = false) => Parse(file, File.ReadAllBytes(file), allowComments);

    public static JsonNode? Parse(string file, ReadOnlyMemory<byte> utf8, bool allowComments = false)
    {
        Check(file, utf8.Span, allowComments);
        return JsonNode.Parse(utf8.Span, documentOptions: Options(allowComments));
    }

    /// <summary>
    /// Checks the text against the rules above without building anything; <paramref name="what"/> names the part of
    /// the file it is (for example "the header"), as errors say.
    /// </summary>
    public static void Check(string file, ReadOnlySpan<byte> utf8, bool allowComments = false, string? what = null)
    {
        // "not valid JSON (...)" for a whole file, "the header is not valid JSON (...)" for a part of one.
        string subject = what is null ? "" : what + " is ";
        string holder = what ?? "the file";
        if (!System.Text.Unicode.Utf8.IsValid(utf8))
            throw new InvalidFileException(file, $"{subject}not UTF-8 text (an invalid byte at offset {InvalidByteOffset(utf8)}).");
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { CommentHandling = Options(allowComments).CommentHandling, MaxDepth = Options(allowComments).MaxDepth });
        var keys = new Stack<(HashSet<string> Names, string Path)>();
        string path = "";
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        keys.Push(([], path));
                        break;
                    case JsonTokenType.EndObject:
                        // Back to the path of the member that holds the object, which its next sibling in an array shares.
                        path = keys.Pop().Path;
                        break;
                    case JsonTokenType.PropertyName:
                        string name = Text(file, holder, ref reader, keys.Peek().Path);
                        path = keys.Peek().Path.Length == 0 ? name : $"{keys.Peek().Path}.{name}";
                        if (!keys.Peek().Names.Add(name))
                            throw new InvalidFileException(file, $"{holder} has the key '{path}' twice.");
                        break;
                    case JsonTokenType.String:
                        Text(file, holder, ref reader, path);
                        break;
                }
            }
        }
        catch (JsonException e)
        {
            throw new InvalidFileException(file, $"{subject}not valid JSON ({e.Message}).", e);
        }
    }

    static string Text(string file, string what, ref Utf8JsonReader reader, string path)
    {
        try
        {
            return reader.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidFileException(file, $"{what} holds a string that is not valid Unicode{(path.Length == 0 ? "" : $" at '{path}'")} ({e.Message}).", e);
        }
    }

    static JsonDocumentOptions Options(bool allowComments) => new()
    {
        CommentHandling = allowComments ? JsonCommentHandling.Skip : JsonCommentHandling.Disallow,
        MaxDepth = 64,
    };

    static int InvalidByteOffset(ReadOnlySpan<byte> utf8)
    {
        for (int start = 0; start < utf8.Length;)
        {
            var status = System.Text.Rune.DecodeFromUtf8(utf8[start..], out _, out int consumed);
            if (status != System.Buffers.OperationStatus.Done) return start;
            start += consumed;
        }
        return utf8.Length;
    }
}
