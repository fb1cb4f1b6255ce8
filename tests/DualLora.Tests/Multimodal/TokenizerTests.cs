using System.Text;
using DualLora.IO;
using DualLora.Multimodal;

namespace DualLora.Tests.Multimodal;

public class TokenizerTests
{
    // Protocol-buffer encoding, just what sentencepiece_model.proto's ModelProto needs.
    static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        do { byte b = (byte)(value & 0x7F); value >>= 7; bytes.Add(value == 0 ? b : (byte)(b | 0x80)); } while (value != 0);
        return bytes.ToArray();
    }
    static byte[] Tag(int field, int wireType) => Varint((ulong)(field << 3 | wireType));
    static byte[] VarintField(int field, ulong value) => [.. Tag(field, 0), .. Varint(value)];
    static byte[] BytesField(int field, byte[] value) => [.. Tag(field, 2), .. Varint((ulong)value.Length), .. value];
    static byte[] FloatField(int field, float value) => [.. Tag(field, 5), .. BitConverter.GetBytes(value)];

    /// <summary>
    /// A SentencePiece BPE model written byte by byte: &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, then pieces whose scores order the
    /// merges (higher merges first): "▁a" before "ab", then "▁ab". LLaMA's variant has the 256 byte pieces
    /// (type 6) after the three, byte_fallback on and remove_extra_whitespaces off.
    /// </summary>
    internal static byte[] HandEncodedModel(bool llamaVariant = false)
    {
        (string Piece, float Score, int Type)[] specials = [("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3)];
        (string Piece, float Score, int Type)[] pieces =
        [
            ("▁a", -1, 1), ("ab", -2, 1), ("▁ab", -3, 1), ("▁c", -4, 1),
            ("▁", -5, 1), ("a", -6, 1), ("b", -7, 1), ("c", -8, 1),
        ];
        var bytePieces = llamaVariant ? Enumerable.Range(0, 256).Select(b => ($"<0x{b:X2}>", 0f, 6)) : [];
        var model = new List<byte>();
        foreach (var (piece, score, type) in specials.Concat(bytePieces).Concat(pieces))
            model.AddRange(BytesField(1, [.. BytesField(1, Encoding.UTF8.GetBytes(piece)), .. FloatField(2, score), .. VarintField(3, (ulong)type)]));
        // TrainerSpec: model_type BPE (2), [byte_fallback (35)], unk_id 0, bos_id 1, eos_id 2.
        byte[] byteFallback = llamaVariant ? [0x98, 0x02, 0x01] : [];
        model.AddRange(BytesField(2, [.. VarintField(3, 2), .. byteFallback, .. VarintField(40, 0), .. VarintField(41, 1), .. VarintField(42, 2)]));
        // NormalizerSpec: name "identity", add_dummy_prefix, remove_extra_whitespaces (off in LLaMA's), escape_whitespaces.
        model.AddRange(BytesField(3, [.. BytesField(1, Encoding.UTF8.GetBytes("identity")), .. VarintField(3, 1), .. VarintField(4, llamaVariant ? 0UL : 1), .. VarintField(5, 1)]));
        return model.ToArray();
    }

    [Fact]
    public void A_SentencePiece_tokenizer_model_in_the_model_folder_encodes_and_decodes()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("tokenizer.model"), HandEncodedModel());
        var tokenizer = HuggingFaceModels.LoadTokenizer(temp.Path);
        Assert.Equal(1, tokenizer.BeginningOfSentenceId);
        Assert.Equal(2, tokenizer.EndOfSentenceId);
        // "ab c" → "▁ab▁c": ▁+a merge first (score −1), then ▁a+b → ▁ab; ▁+c → ▁c.
        Assert.Equal([1, 5, 6], tokenizer.EncodeToIds("ab c"));
        Assert.Equal("ab c", tokenizer.Decode([1, 5, 6]));
    }

    [Fact]
    public void With_byte_fallback_a_character_outside_the_vocabulary_is_its_UTF8_bytes()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("tokenizer.model"), HandEncodedModel(llamaVariant: true));
        var tokenizer = HuggingFaceModels.LoadTokenizer(temp.Path);
        Assert.True(tokenizer.ByteFallback);
        // The pieces moved up by 256: ▁ab 261, ▁c 262, ▁ 263; "é" is C3 A9, at 3 + 0xC3 and 3 + 0xA9.
        Assert.Equal([1, 261, 263, 198, 172], tokenizer.EncodeToIds("ab é"));
        Assert.Equal("ab é", tokenizer.Decode([1, 261, 263, 198, 172]));
        // A one-character text keeps its token with remove_extra_whitespaces off.
        Assert.Equal([1, 262], tokenizer.EncodeToIds("c"));
    }

    [Fact]
    public void A_missing_or_broken_tokenizer_is_a_clear_error()
    {
        using var temp = new TempFolder();
        Assert.Contains("no SentencePiece tokenizer.model", Assert.Throws<FileNotFoundException>(() => HuggingFaceModels.LoadTokenizer(temp.Path)).Message);
        File.WriteAllBytes(temp.File("tokenizer.model"), [0xFF, 0xFF, 0xFF]);
        var error = Assert.Throws<InvalidFileException>(() => HuggingFaceModels.LoadTokenizer(temp.Path));
        Assert.Contains("tokenizer.model: not a SentencePiece BPE model", error.Message);
    }
}

public class SentencePieceModelFileTests
{
    [Fact]
    public void The_writer_produces_the_bytes_encoded_by_hand()
    {
        using var temp = new TempFolder();
        DualLora.Language.SentencePieceModelFile.WriteBpe(temp.File("tokenizer.model"),
            [("▁a", -1), ("ab", -2), ("▁ab", -3), ("▁c", -4), ("▁", -5), ("a", -6), ("b", -7), ("c", -8)]);
        Assert.Equal(TokenizerTests.HandEncodedModel(), File.ReadAllBytes(temp.File("tokenizer.model")));
    }

    [Fact]
    public void The_writer_produces_LLaMAs_variant_encoded_by_hand()
    {
        byte[] written = DualLora.Language.SentencePieceModelFile.Bpe(
            [("▁a", -1), ("ab", -2), ("▁ab", -3), ("▁c", -4), ("▁", -5), ("a", -6), ("b", -7), ("c", -8)],
            byteFallback: true, removeExtraWhitespaces: false);
        Assert.Equal(TokenizerTests.HandEncodedModel(llamaVariant: true), written);
    }
}
