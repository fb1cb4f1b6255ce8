using System.Buffers.Binary;
using System.IO.Compression;
using DualLora.IO;
using TorchSharp;

namespace DualLora.Data;

/// <summary>
/// The idx format of MNIST and Fashion-MNIST: a 4-byte magic number (two zero bytes, the element type,
/// the number of dimensions), each dimension as a big-endian int32, then the elements in row-major order.
/// Only unsigned bytes (type 0x08) are read, the type both data sets use. A file may be gzip-compressed;
/// that is told from its first bytes, not its name.
/// </summary>
public static class IdxFile
{
    const byte UnsignedByteType = 0x08;
    static readonly byte[] GzipSignature = [0x1f, 0x8b];

    /// <summary>
    /// Reads an idx file of unsigned bytes into a uint8 tensor shaped like its dimensions, straight into the
    /// tensor's storage (no managed copy of the elements). <paramref name="expectedMagic"/> fixes the
    /// element type and the number of dimensions (0x00000803: images [N, rows, cols]; 0x00000801: labels [N]).
    /// The file must hold exactly the elements its header announces.
    /// </summary>
    public static torch.Tensor ReadBytes(string path, uint expectedMagic)
    {
        string file = Path.GetFullPath(path);
        if (!File.Exists(file))
            throw new FileNotFoundException($"{file}: the idx file does not exist.", file);
        int dimensionCount = (int)(expectedMagic & 0xff);
        if (expectedMagic >> 8 != UnsignedByteType || dimensionCount == 0)
            throw new ArgumentException($"0x{expectedMagic:x8} is not the magic number of an idx file of unsigned bytes.", nameof(expectedMagic));

        long fileLength = new FileInfo(file).Length;
        using var stream = Open(file, out bool compressed);
        string form = compressed ? " (after gunzip)" : "";
        try
        {
            long[] shape = ReadHeader(stream, file, form, expectedMagic, dimensionCount);
            RequireRoomFor(shape, file, fileLength, compressed, 4 + 4 * dimensionCount);
            var tensor = torch.empty(shape, torch.ScalarType.Byte);
            try
            {
                long expected = tensor.NumberOfElements, read = 0;
                TensorBytes.ForEachBlock(tensor, (block, _) => read += ReadFully(stream, block));
                if (read < expected)
                    throw new InvalidFileException(file,
                        $"truncated{form}: the header announces {Describe(shape)} = {expected} bytes of data, but only {read} follow it.");
                long extra = CountRemaining(stream);
                if (extra > 0)
                    throw new InvalidFileException(file,
                        $"{extra} bytes{form} after the {expected} bytes of data the header announces ({Describe(shape)}); a wrong header or not an idx file.");
                return tensor;
            }
            catch
            {
                tensor.Dispose();
                throw;
            }
        }
        catch (InvalidDataException e) when (compressed)
        {
            // GZipStream's own fault (a corrupt deflate stream) does not say which file it was reading.
            throw new InvalidFileException(file, $"the gzip stream is corrupt ({e.Message}).", e);
        }
    }

    static Stream Open(string file, out bool compressed)
    {
        var raw = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        Span<byte> start = stackalloc byte[2];
        compressed = ReadFully(raw, start) == 2 && start.SequenceEqual(GzipSignature);
        raw.Position = 0;
        return compressed ? new GZipStream(raw, CompressionMode.Decompress) : raw;
    }

    static long[] ReadHeader(Stream stream, string file, string form, uint expectedMagic, int dimensionCount)
    {
        int headerBytes = 4 + 4 * dimensionCount;
        Span<byte> header = stackalloc byte[headerBytes];
        int read = ReadFully(stream, header);
        if (read >= 4 && BinaryPrimitives.ReadUInt32BigEndian(header) is var magic && magic != expectedMagic)
            throw new InvalidFileException(file,
                $"magic number 0x{magic:x8}{form}, expected 0x{expectedMagic:x8} (idx, unsigned bytes, {dimensionCount} dimension{(dimensionCount == 1 ? "" : "s")}).");
        if (read < headerBytes)
            throw new InvalidFileException(file, $"truncated header{form}: {read} bytes, an idx header with {dimensionCount} dimensions needs {headerBytes}.");

        var shape = new long[dimensionCount];
        for (int d = 0; d < dimensionCount; d++)
        {
            int size = BinaryPrimitives.ReadInt32BigEndian(header[(4 + 4 * d)..]);
            if (size < 0)
                throw new InvalidFileException(file, $"dimension {d} of the header is {size}; sizes cannot be negative.");
            shape[d] = size;
        }
        return shape;
    }

    /// <summary>
    /// Refuses a header that announces more data than the file can hold before allocating it, so a damaged
    /// header is this file's error, not a failed allocation of gigabytes. A plain file must hold it all; a
    /// gzip file cannot unpack to more than 1032 times its size (deflate's largest ratio).
    /// </summary>
    static void RequireRoomFor(long[] shape, string file, long fileLength, bool compressed, int headerBytes)
    {
        const int DeflateMaxRatio = 1032;
        Int128 announced = 1;
        foreach (long size in shape) announced *= size;
        long available = compressed ? fileLength * DeflateMaxRatio : fileLength - headerBytes;
        if (announced <= available) return;
        throw new InvalidFileException(file, compressed
            ? $"the header announces {Describe(shape)} = {announced} bytes of data, more than a gzip file of {fileLength} bytes can hold (truncated, or a wrong header)."
            : $"truncated: the header announces {Describe(shape)} = {announced} bytes of data, but only {available} follow it.");
    }

    static int ReadFully(Stream stream, Span<byte> buffer)
    {
        int total = 0;
        for (int n; total < buffer.Length && (n = stream.Read(buffer[total..])) > 0;) total += n;
        return total;
    }

    static long CountRemaining(Stream stream)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        for (int n; (n = stream.Read(buffer)) > 0;) total += n;
        return total;
    }

    static string Describe(long[] shape) => string.Join(" x ", shape);
}
