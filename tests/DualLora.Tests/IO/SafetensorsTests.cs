using System.Buffers.Binary;
using System.Text;
using DualLora.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.IO;

public class SafetensorsTests
{
    /// <summary>A file assembled byte by byte: 8-byte LE header length, the JSON header, the data buffer.</summary>
    static byte[] Assemble(string header, params byte[] data)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)json.Length);
        json.CopyTo(file, 8);
        data.CopyTo(file, 8 + json.Length);
        return file;
    }

    [Fact]
    public void Reads_a_file_written_by_hand()
    {
        using var temp = new TempFolder();
        string path = temp.File("hand.safetensors");
        File.WriteAllBytes(path, Assemble(
            """{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I16","shape":[1,2],"data_offsets":[8,12]},"c":{"dtype":"BF16","shape":[],"data_offsets":[12,14]}}""",
            0x00, 0x00, 0xC0, 0x3F,   // 1.5f
            0x00, 0x00, 0x00, 0xC0,   // -2.0f
            0x02, 0x01, 0xFF, 0xFF,   // (short)258, (short)-1
            0x80, 0x3F));             // bf16 1.0

        using var file = SafetensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(["a", "b", "c"], file.Names);
        using var a = file.ReadTensor("a");
        Assert.Equal(new float[] { 1.5f, -2f }, a.data<float>().ToArray());
        using var b = file.ReadTensor("b");
        Assert.Equal(new long[] { 1, 2 }, b.shape);
        Assert.Equal(new short[] { 258, -1 }, b.data<short>().ToArray());
        using var c = file.ReadTensor("c");
        Assert.Equal(ScalarType.BFloat16, c.dtype);
        Assert.Empty(c.shape);
        Assert.Equal(1.0f, c.to(ScalarType.Float32).item<float>());
    }

    [Fact]
    public void Writes_exactly_the_bytes_of_the_format()
    {
        using var temp = new TempFolder();
        string path = temp.File("u8.safetensors");
        SafetensorsWriter.Write(path, [new SafetensorsTensor("x", SafetensorsDType.U8, [3], new byte[] { 7, 8, 9 })]);
        // 53 bytes of JSON, padded with 3 spaces to 56 so the data starts 8-byte aligned.
        byte[] expected = Assemble("""{"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}   """, 7, 8, 9);
        Assert.Equal(expected, File.ReadAllBytes(path));
    }

    public static TheoryData<ScalarType> AllTypes => new()
    {
        ScalarType.Float64, ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16,
        ScalarType.Int64, ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte, ScalarType.Bool,
    };

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void Every_dtype_round_trips_bit_exactly(ScalarType type)
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var values = type == ScalarType.Bool ? tensor(new[] { true, false, true, true, false, false }).reshape(2, 3)
            : type == ScalarType.Byte ? tensor(new byte[] { 0, 1, 127, 128, 254, 255 }).reshape(2, 3)
            : tensor(new double[] { -3.25, -1, 0, 0.5, 100, 120.75 }).reshape(2, 3).to(type);
        string path = temp.File("all.safetensors");
        SafetensorsWriter.Write(path, [new KeyValuePair<string, Tensor>("w", values)], new Dictionary<string, string> { ["dtype"] = type.ToString() });

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(SafetensorsDTypes.FromScalarType(type), file["w"].DType);
        Assert.Equal(type.ToString(), file.Metadata["dtype"]);
        var read = file.ReadTensor("w");
        TensorAssert.BitEqual(values, read);
        Assert.Equal(values.bytes.ToArray(), file.ReadBytes("w"));
    }

    [Fact]
    public void Non_contiguous_tensors_are_written_in_row_major_order()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var transposed = arange(6, dtype: ScalarType.Int32).reshape(2, 3).t();   // [[0,3],[1,4],[2,5]]
        string path = temp.File("t.safetensors");
        SafetensorsWriter.Write(path, [new KeyValuePair<string, Tensor>("t", transposed)]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(new long[] { 3, 2 }, file["t"].Shape);
        Assert.Equal(new int[] { 0, 3, 1, 4, 2, 5 }, file.ReadTensor("t").data<int>().ToArray());
    }

    static string WriteBad(TempFolder temp, string header, int dataBytes)
    {
        string path = temp.File("bad.safetensors");
        File.WriteAllBytes(path, Assemble(header, new byte[dataBytes]));
        return path;
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 12, "'w'", "outside the data buffer")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "overlaps", "'w'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,4]}}""", 8, "'w'", "outside the data buffer")]
    [InlineData("""{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}""", 2, "'w'", "unknown or unsupported dtype 'F8_E4M3'")]
    [InlineData("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "'w'", "needs 12 bytes but data_offsets span 8")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", 8, "'w'", "non-negative")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2]}}""", 8, "'w'", "'data_offsets' is missing")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]""", 8, "not valid JSON", "bad.safetensors")]
    public void Malformed_files_are_rejected_naming_the_file_and_the_tensor(string header, int dataBytes, string expected1, string expected2)
    {
        using var temp = new TempFolder();
        string path = WriteBad(temp, header, dataBytes);
        var error = Assert.Throws<InvalidFileException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(expected1, error.Message);
        Assert.Contains(expected2, error.Message);
    }

    [Fact]
    public void A_header_longer_than_the_file_is_rejected()
    {
        using var temp = new TempFolder();
        string path = temp.File("short.safetensors");
        byte[] bytes = Assemble("""{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""", 1);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 10_000);
        File.WriteAllBytes(path, bytes);
        var error = Assert.Throws<InvalidFileException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("header length is 10000 bytes", error.Message);
    }

    [Fact]
    public void A_symlinked_file_as_the_hub_cache_lays_it_out_is_read_through_its_link()
    {
        using var temp = new TempFolder();
        string blob = Path.Combine(temp.Path, "blobs", "9f2c");
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        File.WriteAllBytes(blob, Assemble("""{"__metadata__":null,"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 0x00, 0x00, 0xC0, 0x3F));
        string snapshot = Path.Combine(temp.Path, "snapshots", "rev");
        Directory.CreateDirectory(snapshot);
        File.CreateSymbolicLink(Path.Combine(snapshot, "model.safetensors"), Path.Combine("..", "..", "blobs", "9f2c"));

        using var checkpoint = SafetensorsCheckpoint.Open(snapshot);
        using var a = checkpoint.ReadTensor("a");
        Assert.Equal(1.5f, a.item<float>());
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}""", 3, "the tensors hold 2 bytes of data, but 3 bytes follow the header (1 bytes after the last tensor).")]
    [InlineData("""{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}""", 3,
        "tensor 'b' begins at byte 2 of the data buffer, but the tensors before it end at 1: a gap of 1 bytes no tensor holds.")]
    [InlineData("""{}""", 4, "the tensors hold 0 bytes of data, but 4 bytes follow the header (4 bytes after the last tensor).")]
    [InlineData("""{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""", 1, "the header has the key 'a' twice.")]
    [InlineData(""" {"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""", 1, "the header does not start with '{' (not safetensors, or a corrupted header).")]
    [InlineData("""{"a":{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,1]}}""", 1,
        "tensor 'a': shape [4294967296, 4294967296, 4294967296] holds more bytes than 64 bits can count.")]
    public void Bytes_that_no_tensor_holds_and_other_faults_of_the_reference_rules_are_refused(string header, int dataBytes, string fault)
    {
        using var temp = new TempFolder();
        string path = temp.File("bad.safetensors");
        File.WriteAllBytes(path, Assemble(header, new byte[dataBytes]));
        var error = Assert.Throws<InvalidFileException>(() => SafetensorsFile.Open(path));
        Assert.Equal(path, error.File);
        Assert.Equal(fault, error.Fault);
    }

    [Fact]
    public void A_truncated_file_is_rejected()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        string path = temp.File("cut.safetensors");
        SafetensorsWriter.Write(path, [new KeyValuePair<string, Tensor>("weight", ones(4, 4))]);
        byte[] whole = File.ReadAllBytes(path);
        File.WriteAllBytes(path, whole[..^5]);
        var error = Assert.Throws<InvalidFileException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("'weight'", error.Message);

        File.WriteAllBytes(path, whole[..5]);
        Assert.Contains("truncated", Assert.Throws<InvalidFileException>(() => SafetensorsFile.Open(path)).Message);
    }

    [Fact]
    public void A_failed_write_leaves_the_previous_file_intact()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        string path = temp.File("keep.safetensors");
        SafetensorsWriter.Write(path, [new KeyValuePair<string, Tensor>("w", ones(2))]);
        byte[] saved = File.ReadAllBytes(path);
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path,
            [new SafetensorsTensor("w", SafetensorsDType.F32, [2], new byte[8]), new SafetensorsTensor("w", SafetensorsDType.F32, [2], new byte[8])]));
        Assert.Throws<NotSupportedException>(() => SafetensorsWriter.Write(path, [new KeyValuePair<string, Tensor>("c", ones(2, dtype: ScalarType.ComplexFloat32))]));
        Assert.Equal(saved, File.ReadAllBytes(path));
        Assert.Equal(["keep.safetensors"], Directory.GetFiles(temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Sharded_checkpoints_round_trip_through_the_index()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("model.embed_tokens.weight", randn(16, 8)),
            new("model.layers.0.self_attn.q_proj.weight", randn(8, 8)),
            new("model.layers.0.self_attn.v_proj.weight", randn(8, 8).to(ScalarType.BFloat16)),
            new("lm_head.weight", randn(16, 8).to(ScalarType.Float16)),
        };
        SafetensorsCheckpoint.WriteSharded(temp.Path, tensors, maxShardBytes: 600);

        Assert.Equal(3, Directory.GetFiles(temp.Path, "model-*-of-00003.safetensors").Length);
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Path);
        Assert.EndsWith(SafetensorsCheckpoint.IndexFileName, checkpoint.Source);
        Assert.Equal(tensors.Select(t => t.Key).Order(), checkpoint.Names.Order());
        foreach (var (name, expected) in tensors)
            TensorAssert.BitEqual(expected, checkpoint.ReadTensor(name), name);
    }

    [Fact]
    public void An_index_that_disagrees_with_its_shards_is_rejected()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        SafetensorsCheckpoint.WriteSharded(temp.Path, [new("a", ones(100)), new("b", ones(100))], maxShardBytes: 400);
        string index = Path.Combine(temp.Path, SafetensorsCheckpoint.IndexFileName);
        string good = File.ReadAllText(index);

        File.WriteAllText(index, good.Replace("\"b\": \"model-00002-of-00002.safetensors\"", "\"b\": \"model-00001-of-00002.safetensors\""));
        var wrongShard = Assert.Throws<InvalidFileException>(() => SafetensorsCheckpoint.Open(temp.Path));
        Assert.Contains("'b'", wrongShard.Message);
        Assert.Contains(index, wrongShard.Message);

        File.WriteAllText(index, good.Replace("model-00002-of-00002.safetensors", "model-00009-of-00002.safetensors"));
        var missing = Assert.Throws<InvalidFileException>(() => SafetensorsCheckpoint.Open(temp.Path));
        Assert.EndsWith(SafetensorsCheckpoint.IndexFileName, missing.File);
        Assert.Contains("model-00009-of-00002.safetensors", missing.Message);
    }

    [Fact]
    public void A_single_file_folder_opens_as_a_checkpoint()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        SafetensorsWriter.Write(temp.File(SafetensorsCheckpoint.SingleFileName), [new KeyValuePair<string, Tensor>("w", arange(5))]);
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Path);
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, checkpoint.ReadTensor("w").data<long>().ToArray());
        Assert.Contains("'nope'", Assert.Throws<KeyNotFoundException>(() => checkpoint.ReadTensor("nope")).Message);
    }
}
