using System.Text;
using DualLora.IO;

namespace DualLora.Language;

/// <summary>
/// Writes a SentencePiece BPE model (<c>tokenizer.model</c>, the protocol-buffer ModelProto of
/// sentencepiece_model.proto) for a given vocabulary, so tests and notebooks can make small checkpoints in
/// the real LLaMA layout. Ids 0, 1 and 2 are &lt;unk&gt;, &lt;s&gt; and &lt;/s&gt;; with byte fallback the 256 byte pieces
/// &lt;0x00&gt; to &lt;0xFF&gt; follow at 3 to 258, as in LLaMA's tokenizer; the other pieces follow in order, and their
/// scores order the BPE merges (higher first).
/// </summary>
public static class SentencePieceModelFile
{
    public const int UnknownId = 0, BeginningOfSentenceId = 1, EndOfSentenceId = 2;

    /// <summary>The number of pieces before the given ones: the three special pieces, and the 256 byte pieces with byte fallback.</summary>
    public static int FirstPieceId(bool byteFallback) => byteFallback ? 3 + 256 : 3;

    /// <summary>
    /// Writes the model to <paramref name="path"/>. With <paramref name="byteFallback"/>, a character outside the
    /// vocabulary is encoded as its UTF-8 bytes instead of &lt;unk&gt;. <paramref name="removeExtraWhitespaces"/> is the
    /// normalizer's flag that drops leading, trailing and repeated spaces; LLaMA's tokenizer has it off (and
    /// Microsoft.ML.Tokenizers 2.0.1, with it on, encodes a one-character text to nothing).
    /// </summary>
    public static void WriteBpe(string path, IReadOnlyList<(string Piece, float Score)> pieces, bool byteFallback = false, bool removeExtraWhitespaces = true) =>
        AtomicFile.WriteAllBytes(path, Bpe(pieces, byteFallback, removeExtraWhitespaces));

    /// <summary>The bytes <see cref="WriteBpe"/> writes.</summary>
    public static byte[] Bpe(IReadOnlyList<(string Piece, float Score)> pieces, bool byteFallback = false, bool removeExtraWhitespaces = true)
    {
        var model = new List<byte>();
        const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;
        var bytePieces = byteFallback ? Enumerable.Range(0, 256).Select(b => ($"<0x{b:X2}>", 0f, Byte)) : [];
        foreach (var (piece, score, type) in new[] { ("<unk>", 0f, Unknown), ("<s>", 0f, Control), ("</s>", 0f, Control) }
                     .Concat(bytePieces)
                     .Concat(pieces.Select(p => (p.Piece, p.Score, Normal))))
            model.AddRange(BytesField(1, [.. BytesField(1, Encoding.UTF8.GetBytes(piece)), .. FloatField(2, score), .. VarintField(3, (ulong)type)]));
        // TrainerSpec: model_type BPE (2), byte_fallback (35) when asked, unk_id 0, bos_id 1, eos_id 2.
        byte[] byteFallbackField = byteFallback ? VarintField(35, 1) : [];
        model.AddRange(BytesField(2, [.. VarintField(3, 2), .. byteFallbackField, .. VarintField(40, UnknownId), .. VarintField(41, BeginningOfSentenceId), .. VarintField(42, EndOfSentenceId)]));
        // NormalizerSpec: name "identity", add_dummy_prefix, remove_extra_whitespaces as asked, escape_whitespaces.
        model.AddRange(BytesField(3, [.. BytesField(1, Encoding.UTF8.GetBytes("identity")), .. VarintField(3, 1), .. VarintField(4, removeExtraWhitespaces ? 1UL : 0), .. VarintField(5, 1)]));
        return model.ToArray();
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
