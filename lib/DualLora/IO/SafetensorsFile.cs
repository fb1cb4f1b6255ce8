using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using TorchSharp;

namespace DualLora.IO;

/// <summary>One tensor's entry in a safetensors header. Offsets are relative to the start of the data buffer.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A safetensors file opened for reading: an 8-byte little-endian header length, a JSON header
/// <c>{name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}</c>, then the raw little-endian
/// row-major data. The file is memory-mapped, so a tensor is copied straight from the page cache into
/// its destination and a multi-GB file is never read into one array. Every entry is validated on open.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    const string MetadataKey = "__metadata__";
    // The reference implementation refuses headers above 100 MB; so do we, before allocating them.
    const long MaxHeaderBytes = 100_000_000;

    readonly MemoryMappedFile? mapping;
    readonly MemoryMappedViewAccessor? view;
    readonly Dictionary<string, SafetensorsEntry> entries;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Byte offset of the data buffer in the file (8 + header length).</summary>
    public long DataStart { get; }

    SafetensorsFile(string path, MemoryMappedFile? mapping, MemoryMappedViewAccessor? view,
        Dictionary<string, SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata, long dataStart)
    {
        Path = path; this.mapping = mapping; this.view = view; this.entries = entries; Metadata = metadata; DataStart = dataStart;
    }

    /// <summary>Tensor names in the order of their data in the file.</summary>
    public IEnumerable<string> Names => entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.Name, StringComparer.Ordinal).Select(e => e.Name);
    public IReadOnlyCollection<SafetensorsEntry> Entries => entries.Values;
    public bool Contains(string name) => entries.ContainsKey(name);

    public SafetensorsEntry this[string name] => entries.TryGetValue(name, out var entry) ? entry
        : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'.");

    public static SafetensorsFile Open(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        long length = new FileInfo(full).Length;
        if (length < 8)
            throw new InvalidDataException($"{full}: truncated safetensors file ({length} bytes; the 8-byte header length alone needs 8).");

        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)(length - 8))
            throw new InvalidDataException($"{full}: the header length is {headerLength} bytes but only {length - 8} bytes follow it (truncated file or not safetensors).");
        if ((long)headerLength > MaxHeaderBytes)
            throw new InvalidDataException($"{full}: the header length {headerLength} exceeds the 100 MB limit.");
        byte[] header = new byte[headerLength];
        stream.ReadExactly(header);

        long dataStart = 8 + (long)headerLength;
        var (entries, metadata) = ParseHeader(full, header, length - dataStart);
        if (entries.Values.All(e => e.ByteLength == 0))
            return new SafetensorsFile(full, null, null, entries, metadata, dataStart);

        var mapping = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        var view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        return new SafetensorsFile(full, mapping, view, entries, metadata, dataStart);
    }

    static (Dictionary<string, SafetensorsEntry>, IReadOnlyDictionary<string, string>) ParseHeader(string file, byte[] header, long dataLength)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header.AsMemory().TrimEnd((byte)' '));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{file}: the header is not valid JSON ({e.Message}).", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{file}: the header must be a JSON object.");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                        throw new InvalidDataException($"{file}: '{MetadataKey}' must be an object of strings.");
                    foreach (var item in property.Value.EnumerateObject())
                        metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()!
                            : throw new InvalidDataException($"{file}: '{MetadataKey}.{item.Name}' must be a string.");
                    continue;
                }
                if (entries.ContainsKey(property.Name))
                    throw new InvalidDataException($"{file}: tensor '{property.Name}' appears twice in the header.");
                entries[property.Name] = ParseEntry(file, property.Name, property.Value, dataLength);
            }

            var ordered = entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
            for (int i = 1; i < ordered.Count; i++)
                if (ordered[i].Begin < ordered[i - 1].End)
                    throw new InvalidDataException(
                        $"{file}: tensor '{ordered[i].Name}' (bytes {ordered[i].Begin}..{ordered[i].End}) overlaps tensor '{ordered[i - 1].Name}' (bytes {ordered[i - 1].Begin}..{ordered[i - 1].End}).");
            return (entries, metadata);
        }
    }

    static SafetensorsEntry ParseEntry(string file, string name, JsonElement value, long dataLength)
    {
        string where = $"{file}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where}: the entry must be an object with dtype, shape and data_offsets.");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{where}: 'dtype' is missing or not a string.");
        string dtypeName = dtypeElement.GetString()!;
        var dtype = SafetensorsDTypes.Parse(dtypeName)
            ?? throw new InvalidDataException($"{where}: unknown or unsupported dtype '{dtypeName}' (supported: {string.Join(", ", Enum.GetNames<SafetensorsDType>())}).");
        long[] shape = Integers(where, value, "shape");
        long[] offsets = Integers(where, value, "data_offsets");
        if (offsets.Length != 2)
            throw new InvalidDataException($"{where}: 'data_offsets' must hold exactly two numbers [begin, end].");
        var entry = new SafetensorsEntry(name, dtype, shape, offsets[0], offsets[1]);
        if (entry.Begin > entry.End || entry.End > dataLength)
            throw new InvalidDataException(
                $"{where}: data_offsets [{entry.Begin}, {entry.End}] lie outside the data buffer of {dataLength} bytes (truncated file or bad offsets).");
        long expected;
        try
        {
            expected = checked(entry.ElementCount * dtype.ByteSize());
        }
        catch (OverflowException)
        {
            throw new InvalidDataException($"{where}: shape [{string.Join(", ", shape)}] is too large.");
        }
        if (expected != entry.ByteLength)
            throw new InvalidDataException(
                $"{where}: shape [{string.Join(", ", shape)}] of {dtypeName} needs {expected} bytes but data_offsets span {entry.ByteLength}.");
        return entry;
    }

    static long[] Integers(string where, JsonElement value, string key)
    {
        if (!value.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{where}: '{key}' is missing or not an array.");
        return array.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long n) && n >= 0 ? n
            : throw new InvalidDataException($"{where}: '{key}' must hold non-negative whole numbers, found {e.GetRawText()}.")).ToArray();
    }

    /// <summary>Copies a tensor's raw little-endian bytes into <paramref name="destination"/>, which must be exactly its size.</summary>
    public void CopyBytes(string name, Span<byte> destination)
    {
        var entry = this[name];
        if (destination.Length != entry.ByteLength)
            throw new ArgumentException($"{Path}: tensor '{name}' has {entry.ByteLength} bytes, the destination {destination.Length}.");
        CopyRange(entry, 0, destination);
    }

    public byte[] ReadBytes(string name)
    {
        var bytes = new byte[this[name].ByteLength];
        CopyBytes(name, bytes);
        return bytes;
    }

    /// <summary>
    /// Reads one tensor into a new CPU tensor of the stored dtype and shape (then moves it to
    /// <paramref name="device"/> if given). The bytes go from the mapping straight into the tensor's storage.
    /// </summary>
    public torch.Tensor ReadTensor(string name, torch.Device? device = null)
    {
        var entry = this[name];
        var tensor = torch.empty(entry.Shape, entry.DType.ToScalarType(), torch.CPU);
        TensorBytes.ForEachBlock(tensor, (block, offset) => CopyRange(entry, offset, block));
        if (device == null || device.type == DeviceType.CPU) return tensor;
        using (tensor) return tensor.to(device);
    }

    unsafe void CopyRange(SafetensorsEntry entry, long offset, Span<byte> destination)
    {
        if (destination.Length == 0) return;
        byte* source = null;
        view!.SafeMemoryMappedViewHandle.AcquirePointer(ref source);
        try
        {
            new ReadOnlySpan<byte>(source + view.PointerOffset + DataStart + entry.Begin + offset, destination.Length).CopyTo(destination);
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    public void Dispose()
    {
        view?.Dispose();
        mapping?.Dispose();
    }
}
