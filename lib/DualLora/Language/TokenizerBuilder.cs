using DualLora.IO;

namespace DualLora.Language;

/// <summary>
/// Builds a SentencePiece BPE tokenizer (<c>tokenizer.model</c>) for a small model from the texts it will read,
/// in LLaMA's layout, so it loads like a LLaMA tokenizer (<c>HuggingFaceModels.LoadTokenizer</c>): &lt;unk&gt;, &lt;s&gt;,
/// &lt;/s&gt; at 0, 1, 2, the 256 byte pieces at 3 to 258 (byte fallback: a character the corpus never showed becomes
/// its UTF-8 bytes, so every text decodes back to itself), then the corpus's pieces. As in LLaMA's, spaces are
/// kept as they are (no removal of extra whitespace).
/// </summary>
/// <remarks>
/// The algorithm. SentencePiece sees a text as words, each led by "▁" (the space, and a dummy prefix before the
/// first word). Every word seen at least <c>minimumCount</c> times becomes a piece, with all its prefixes from "▁"
/// and its first character on: BPE reaches a piece only through merges whose results are pieces, and the
/// prefixes are the chain "▁W", "▁Wh", "▁Wha", "▁What" that grows a word from its start. Every character of the
/// corpus is a piece as well. Pieces are ordered by the number of word occurrences they cover (most first, ties by
/// ordinal order), the longer pieces before the single characters; a piece's score is minus its position.
/// Since every longer piece starts with "▁" and holds no other "▁", the only merge BPE can make adds the next
/// character to a word's first symbol; so whatever the scores, a word of the vocabulary encodes to one token,
/// and any other word to its longest prefix in the vocabulary followed by its characters (or their bytes).
/// </remarks>
public static class TokenizerBuilder
{
    /// <summary>SentencePiece's word start: the escaped space.</summary>
    public const string WordStart = "▁";

    public const string ModelFileName = "tokenizer.model";

    /// <summary>The pieces after the special and byte pieces, in id order (the first has id <see cref="FirstPieceId"/>), with their scores.</summary>
    public static IReadOnlyList<(string Piece, float Score)> Pieces(IEnumerable<string> corpus, int minimumCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minimumCount, 1);
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string text in corpus)
            foreach (string word in text.Split([' ', WordStart[0]], StringSplitOptions.RemoveEmptyEntries))
                words[word] = words.GetValueOrDefault(word) + 1;

        // Every word starts with "▁", even in an empty corpus.
        var characters = new Dictionary<string, int>(StringComparer.Ordinal) { [WordStart] = 0 };
        var longer = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (word, count) in words)
        {
            string piece = WordStart;
            characters[WordStart] += count;
            foreach (var rune in word.EnumerateRunes())
            {
                string character = rune.ToString();
                characters[character] = characters.GetValueOrDefault(character) + count;
                piece += character;
                if (count >= minimumCount) longer[piece] = longer.GetValueOrDefault(piece) + count;
            }
        }
        return ByCount(longer).Concat(ByCount(characters)).Select((piece, position) => (piece, -(float)(position + 1))).ToList();
    }

    /// <summary>The id of the first corpus piece: after &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt; and the 256 byte pieces.</summary>
    public static int FirstPieceId => SentencePieceModelFile.FirstPieceId(byteFallback: true);

    /// <summary>The bytes of the <c>tokenizer.model</c> for <paramref name="corpus"/>; the same corpus gives the same bytes.</summary>
    public static byte[] Build(IEnumerable<string> corpus, int minimumCount) =>
        SentencePieceModelFile.Bpe(Pieces(corpus, minimumCount), byteFallback: true, removeExtraWhitespaces: false);

    /// <summary>Writes <c>tokenizer.model</c> for <paramref name="corpus"/> into <paramref name="folder"/> and returns its path.</summary>
    public static string Write(string folder, IEnumerable<string> corpus, int minimumCount)
    {
        string path = Path.Combine(Path.GetFullPath(folder), ModelFileName);
        AtomicFile.WriteAllBytes(path, Build(corpus, minimumCount));
        return path;
    }

    static IEnumerable<string> ByCount(Dictionary<string, int> counts) =>
        counts.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key);
}
