using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using DualLora.IO;

namespace DualLora.Tests.IO;

/// <summary>
/// The fuzz test's oracle: whether bytes are a valid safetensors file, by the rules of the format's reference
/// implementation, written apart from the library's reader. An 8-byte little-endian header length of at most
/// 100 MB that the file holds; a UTF-8 JSON object header that starts with '{' (spaces may pad its end); no
/// key twice anywhere; <c>__metadata__</c> null or an object of strings; each tensor a known dtype, a shape of
/// whole numbers whose byte count fits 64 bits, and data_offsets [begin, end] spanning exactly that count; the
/// tensors, sorted by offset, tile the data buffer from 0 to its end with no gap, overlap or trailing byte.
/// </summary>
static class ReferenceSafetensors
{
    const ulong MaxHeader = 100_000_000;

    /// <summary>Null for a valid file, else the first rule it breaks.</summary>
    public static string? Fault(byte[] file)
    {
        if (file.Length < 8) return "shorter than the header length";
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (headerLength > MaxHeader) return "header above 100 MB";
        if (headerLength > (ulong)(file.Length - 8)) return "header longer than the file";
        var header = file.AsSpan(8, (int)headerLength);
        if (!System.Text.Unicode.Utf8.IsValid(header)) return "header not UTF-8";
        if (header.Length == 0 || header[0] != (byte)'{') return "header does not start with '{'";
        long dataLength = file.Length - 8 - (long)headerLength;
        try
        {
            using var document = JsonDocument.Parse(header.ToArray().AsMemory().TrimEnd((byte)' '));
            return Check(document.RootElement, dataLength);
        }
        catch (JsonException e)
        {
            return $"header not JSON: {e.Message}";
        }
        catch (InvalidOperationException e)
        {
            return $"header holds text that is not Unicode: {e.Message}";
        }
    }

    static string? Check(JsonElement root, long dataLength)
    {
        if (root.ValueKind != JsonValueKind.Object) return "header not an object";
        if (Duplicate(root) is { } duplicate) return duplicate;
        var tensors = new List<(string Name, long Begin, long End)>();
        foreach (var property in root.EnumerateObject())
        {
            if (property.Name == "__metadata__")
            {
                if (property.Value.ValueKind == JsonValueKind.Null) continue;
                if (property.Value.ValueKind != JsonValueKind.Object) return "metadata not an object";
                if (Duplicate(property.Value) is { } inMetadata) return inMetadata;
                if (property.Value.EnumerateObject().Any(p => p.Value.ValueKind != JsonValueKind.String)) return "metadata value not a string";
                foreach (var item in property.Value.EnumerateObject()) item.Value.GetString();
                continue;
            }
            var entry = property.Value;
            if (entry.ValueKind != JsonValueKind.Object) return $"{property.Name}: not an object";
            if (Duplicate(entry) is { } inEntry) return inEntry;
            if (!entry.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String) return $"{property.Name}: no dtype";
            if (SafetensorsDTypes.Parse(dtype.GetString()!) is not { } known) return $"{property.Name}: unknown dtype";
            if (Whole(entry, "shape") is not { } shape) return $"{property.Name}: bad shape";
            if (Whole(entry, "data_offsets") is not [var begin, var end]) return $"{property.Name}: bad data_offsets";
            long bytes;
            try
            {
                bytes = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * known.ByteSize());
            }
            catch (OverflowException)
            {
                return $"{property.Name}: byte count overflows";
            }
            if (end < begin || end - begin != bytes) return $"{property.Name}: offsets do not span the shape";
            tensors.Add((property.Name, begin, end));
        }
        long next = 0;
        foreach (var tensor in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (tensor.Begin != next) return $"{tensor.Name}: begins at {tensor.Begin}, not {next}";
            next = tensor.End;
        }
        return next == dataLength ? null : $"tensors cover {next} of {dataLength} data bytes";
    }

    static string? Duplicate(JsonElement obj)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in obj.EnumerateObject())
            if (!names.Add(property.Name)) return $"key '{property.Name}' twice";
        return null;
    }

    static long[]? Whole(JsonElement entry, string key)
    {
        if (!entry.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array) return null;
        var values = new List<long>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long value) || value < 0) return null;
            values.Add(value);
        }
        return values.ToArray();
    }

    /// <summary>A file from a header text and a data buffer, the header length written in front.</summary>
    public static byte[] Assemble(byte[] header, ReadOnlySpan<byte> data)
    {
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file.AsSpan(8 + header.Length));
        return file;
    }

    public static byte[] Assemble(string header, ReadOnlySpan<byte> data) => Assemble(Encoding.UTF8.GetBytes(header), data);

    /// <summary>A file's header text (as written, padding kept) and its data buffer.</summary>
    public static (string Header, byte[] Data) Split(byte[] file)
    {
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        return (Encoding.UTF8.GetString(file, 8, length), file[(8 + length)..]);
    }
}
