using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;

namespace DualLora.IO;

/// <summary>A tensor to write: its name, dtype, shape and raw little-endian row-major bytes.</summary>
public sealed record SafetensorsTensor(string Name, SafetensorsDType DType, long[] Shape, ReadOnlyMemory<byte> Data);

/// <summary>
/// Writes safetensors files: the 8-byte little-endian header length, the JSON header (padded with spaces
/// to a multiple of 8 bytes, as the reference implementation does, so the data buffer stays aligned),
/// then each tensor's bytes in header order. The file appears atomically (temporary file, then rename).
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>One tensor as the writer sees it: what the header says, and how to stream its bytes.</summary>
    sealed record Item(string Name, SafetensorsDType DType, long[] Shape, long ByteLength, Action<Stream> WriteData);

    public static void Write(string path, IEnumerable<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors.Select(t =>
        {
            long expected = t.Shape.Aggregate(1L, (a, b) => a * b) * t.DType.ByteSize();
            if (t.Data.Length != expected)
                throw new ArgumentException($"{path}: tensor '{t.Name}' of shape [{string.Join(", ", t.Shape)}] {t.DType} needs {expected} bytes, got {t.Data.Length}.");
            return new Item(t.Name, t.DType, t.Shape, t.Data.Length, s => s.Write(t.Data.Span));
        }).ToList(), metadata);

    /// <summary>Writes torch tensors (any device; each is copied to contiguous CPU memory while it is written).</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors.Select(pair => new Item(pair.Key, SafetensorsDTypes.FromScalarType(pair.Value.dtype), pair.Value.shape,
            pair.Value.NumberOfElements * pair.Value.ElementSize, stream => WriteTensorBytes(pair.Value, stream))).ToList(), metadata);

    static void WriteTensorBytes(torch.Tensor tensor, Stream stream)
    {
        using var scope = torch.NewDisposeScope();
        TensorBytes.ForEachBlock(tensor.detach().to(torch.CPU).contiguous(), (block, _) => stream.Write(block));
    }

    static void Write(string path, List<Item> items, IReadOnlyDictionary<string, string>? metadata)
    {
        var duplicate = items.GroupBy(i => i.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null) throw new ArgumentException($"{path}: tensor name '{duplicate.Key}' is given twice.");
        if (items.Any(i => i.Name == "__metadata__")) throw new ArgumentException($"{path}: '__metadata__' is reserved and cannot name a tensor.");

        byte[] header = Header(items, metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var item in items) item.WriteData(stream);
        });
    }

    static byte[] Header(List<Item> items, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var item in items)
            {
                json.WriteStartObject(item.Name);
                json.WriteString("dtype", item.DType.ToString());
                json.WriteStartArray("shape");
                foreach (long dimension in item.Shape) json.WriteNumberValue(dimension);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + item.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += item.ByteLength;
            }
            json.WriteEndObject();
        }
        int padding = (int)((8 - buffer.Length % 8) % 8);
        buffer.Write(Encoding.ASCII.GetBytes(new string(' ', padding)));
        return buffer.ToArray();
    }
}
