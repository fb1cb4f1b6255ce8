using System.Text;
using DualLora.IO;

namespace DualLora.Language;

/// <summary>
/// Writes a SentencePiece BPE model (<c>tokenizer.model</c>, the protocol-buffer ModelProto of
/// sentencepiece_model.proto) for a given vocabulary, so tests and notebooks can make small checkpoints in
/// the real LLaMA layout. Ids 0, 1 and 2 are &lt;unk&gt;, &lt;s&gt; and &lt;/s&gt;; the other pieces follow in order,
/// and their scores order the BPE merges (higher first). No byte fallback.
/// </summary>
public static class SentencePieceModelFile
{
    public static void WriteBpe(string path, IReadOnlyList<(string Piece, float Score)> pieces)
    {
        var model = new List<byte>();
        const int Normal = 1, Unknown = 2, Control = 3;
        foreach (var (piece, score, type) in new[] { ("<unk>", 0f, Unknown), ("<s>", 0f, Control), ("</s>", 0f, Control) }
                     .Concat(pieces.Select(p => (p.Piece, p.Score, Normal))))
            model.AddRange(BytesField(1, [.. BytesField(1, Encoding.UTF8.GetBytes(piece)), .. FloatField(2, score), .. VarintField(3, (ulong)type)]));
        // TrainerSpec: model_type BPE (2), unk_id 0, bos_id 1, eos_id 2.
        model.AddRange(BytesField(2, [.. VarintField(3, 2), .. VarintField(40, 0), .. VarintField(41, 1), .. VarintField(42, 2)]));
        // NormalizerSpec: name "identity", add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces.
        model.AddRange(BytesField(3, [.. BytesField(1, Encoding.UTF8.GetBytes("identity")), .. VarintField(3, 1), .. VarintField(4, 1), .. VarintField(5, 1)]));
        AtomicFile.WriteAllBytes(path, model.ToArray());
    }

    static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            byte low = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? low : (byte)(low | 0x80));
        } while (value != 0);
        return bytes.ToArray();
    }

    static byte[] Tag(int field, int wireType) => Varint((ulong)(field << 3 | wireType));
    static byte[] VarintField(int field, ulong value) => [.. Tag(field, 0), .. Varint(value)];
    static byte[] BytesField(int field, byte[] value) => [.. Tag(field, 2), .. Varint((ulong)value.Length), .. value];
    static byte[] FloatField(int field, float value) => [.. Tag(field, 5), .. BitConverter.GetBytes(value)];
}
