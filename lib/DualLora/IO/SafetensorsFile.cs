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
    /// <summary>The product of the shape (checked: the reader refuses shapes whose byte count does not fit 64 bits).</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));
}

/// <summary>
/// A safetensors file opened for reading: an 8-byte little-endian header length, a JSON header
/// <c>{name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}</c>, then the raw little-endian
/// row-major data. The file is memory-mapped, so a tensor is copied straight from the page cache into
/// its destination and a multi-GB file is never read into one array. The file is validated on open as the
/// format's reference implementation does: a header of at most 100 MB that starts with '{' (strict JSON: UTF-8,
/// no key twice), <c>__metadata__</c> null or strings, each tensor a known dtype with a shape whose byte count
/// fits 64 bits and equals its span, and the tensors tiling the data buffer exactly (no gap, overlap or
/// trailing byte). A symbolic link (the Hugging Face hub cache's layout) is followed. Every fault is an
/// <see cref="InvalidFileException"/> naming the file and, where one is at fault, the tensor.
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
        // The stream's length is the target's when the path is a symbolic link (FileInfo's would be the link's own).
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = stream.Length;
        if (length < 8)
            throw new InvalidFileException(full, $"truncated safetensors file ({length} bytes; the 8-byte header length alone needs 8).");
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)(length - 8))
            throw new InvalidFileException(full, $"the header length is {headerLength} bytes but only {length - 8} bytes follow it (truncated file or not safetensors).");
        if ((long)headerLength > MaxHeaderBytes)
            throw new InvalidFileException(full, $"the header length {headerLength} exceeds the 100 MB limit.");
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
        if (header.Length == 0 || header[0] != (byte)'{')
            throw new InvalidFileException(file, "the header does not start with '{' (not safetensors, or a corrupted header).");
        var json = header.AsMemory().TrimEnd((byte)' ');
        StrictJson.Check(file, json.Span, what: "the header");
        using (var document = JsonDocument.Parse(json))
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidFileException(file, "the header must be a JSON object.");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    // The reference implementation writes null for a file without metadata.
                    if (property.Value.ValueKind == JsonValueKind.Null) continue;
                    if (property.Value.ValueKind != JsonValueKind.Object)
                        throw new InvalidFileException(file, $"'{MetadataKey}' must be null or an object of strings.");
                    foreach (var item in property.Value.EnumerateObject())
                        metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()!
                            : throw new InvalidFileException(file, $"'{MetadataKey}.{item.Name}' must be a string.");
                    continue;
                }
                entries[property.Name] = ParseEntry(file, property.Name, property.Value, dataLength);
            }

            // The tensors must tile the data buffer: each begins where the one before ends, and the last ends at its end.
            long next = 0;
            SafetensorsEntry? previous = null;
            foreach (var entry in entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End))
            {
                if (entry.Begin != next)
                    throw new InvalidFileException(file, entry.Begin < next
                        ? $"tensor '{entry.Name}' (bytes {entry.Begin}..{entry.End}) overlaps tensor '{previous!.Name}' (bytes {previous.Begin}..{previous.End})."
                        : $"tensor '{entry.Name}' begins at byte {entry.Begin} of the data buffer, but the tensors before it end at {next}: a gap of {entry.Begin - next} bytes no tensor holds.");
                next = entry.End;
                previous = entry;
            }
            if (next != dataLength)
                throw new InvalidFileException(file, $"the tensors hold {next} bytes of data, but {dataLength} bytes follow the header ({dataLength - next} bytes after the last tensor).");
            return (entries, metadata);
        }
    }

    static SafetensorsEntry ParseEntry(string file, string name, JsonElement value, long dataLength)
    {
        string where = $"tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
            throw new InvalidFileException(file, $"{where}: the entry must be an object with dtype, shape and data_offsets.");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new InvalidFileException(file, $"{where}: 'dtype' is missing or not a string.");
        string dtypeName = dtypeElement.GetString()!;
        var dtype = SafetensorsDTypes.Parse(dtypeName)
            ?? throw new InvalidFileException(file, $"{where}: unknown or unsupported dtype '{dtypeName}' (supported: {string.Join(", ", Enum.GetNames<SafetensorsDType>())}).");
        long[] shape = Integers(file, where, value, "shape");
        long[] offsets = Integers(file, where, value, "data_offsets");
        if (offsets.Length != 2)
            throw new InvalidFileException(file, $"{where}: 'data_offsets' must hold exactly two numbers [begin, end].");
        var entry = new SafetensorsEntry(name, dtype, shape, offsets[0], offsets[1]);
        if (entry.Begin > entry.End || entry.End > dataLength)
            throw new InvalidFileException(file,
                $"{where}: data_offsets [{entry.Begin}, {entry.End}] lie outside the data buffer of {dataLength} bytes (truncated file or bad offsets).");
        long expected;
        try
        {
            expected = checked(entry.ElementCount * dtype.ByteSize());
        }
        catch (OverflowException)
        {
            throw new InvalidFileException(file, $"{where}: shape [{string.Join(", ", shape)}] holds more bytes than 64 bits can count.");
        }
        if (expected != entry.ByteLength)
            throw new InvalidFileException(file,
                $"{where}: shape [{string.Join(", ", shape)}] of {dtypeName} needs {expected} bytes but data_offsets span {entry.ByteLength}.");
        return entry;
    }

    static long[] Integers(string file, string where, JsonElement value, string key)
    {
        if (!value.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new InvalidFileException(file, $"{where}: '{key}' is missing or not an array.");
        return array.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long n) && n >= 0 ? n
            : throw new InvalidFileException(file, $"{where}: '{key}' must hold non-negative whole numbers, found {e.GetRawText()}.")).ToArray();
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
