using DualLora.Language;
using DualLora.Multimodal;
using Microsoft.ML.Tokenizers;

namespace DualLora.Tests.Language;

public class TokenizerBuilderTests
{
    // Short instructions and answers as the instruction suite writes them: punctuation, digits, slashes, capitals.
    static readonly string[] Suite =
    [
        "What is in the top left? <image>",
        "<image>\nWhat is in the bottom right?",
        "How many shoes are there?",
        "How many shoes are there? Answer with a number.",
        "yes",
        "no",
        "2",
        "Sneaker, Bag, T-shirt/top",
        "Is there a Sneaker? Answer yes or no.",
        "List the items in reading order: Ankle boot, Trouser, Pullover (3 of 4).",
    ];

    static LlamaTokenizer Load(IEnumerable<string> corpus, int minimumCount, TempFolder temp)
    {
        TokenizerBuilder.Write(temp.Path, corpus, minimumCount);
        return HuggingFaceModels.LoadTokenizer(temp.Path);
    }

    static IReadOnlyList<int> Encode(LlamaTokenizer tokenizer, string text) =>
        tokenizer.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);

    [Fact]
    public void The_pieces_are_the_frequent_words_with_their_prefixes_then_every_character_by_count()
    {
        // Word occurrences: yes 2, no 1. "▁" starts all 3; y, e, s 2 each; n, o 1 each.
        string[] corpus = ["yes", "no yes"];
        Assert.Equal(
            [("▁y", -1f), ("▁ye", -2f), ("▁yes", -3f), ("▁n", -4f), ("▁no", -5f),
             ("▁", -6f), ("e", -7f), ("s", -8f), ("y", -9f), ("n", -10f), ("o", -11f)],
            TokenizerBuilder.Pieces(corpus, minimumCount: 1));
        // "no" is seen once: below two it stays characters.
        Assert.Equal(["▁y", "▁ye", "▁yes", "▁", "e", "s", "y", "n", "o"], TokenizerBuilder.Pieces(corpus, minimumCount: 2).Select(p => p.Piece));
    }

    [Fact]
    public void A_word_of_the_corpus_is_one_token_with_the_id_the_builder_gave_it()
    {
        using var temp = new TempFolder();
        var tokenizer = Load(["yes", "no yes"], minimumCount: 1, temp);
        // After <unk> <s> </s> and 256 bytes (ids 0-258): ▁y 259, ▁ye 260, ▁yes 261, ▁n 262, ▁no 263.
        Assert.Equal(259, TokenizerBuilder.FirstPieceId);
        Assert.Equal([1, 261], tokenizer.EncodeToIds("yes"));
        Assert.Equal([1, 263, 261], tokenizer.EncodeToIds("no yes"));
    }

    [Fact]
    public void Every_word_of_the_suite_is_one_token_and_a_sentence_is_one_token_per_word()
    {
        using var temp = new TempFolder();
        var tokenizer = Load(Suite, minimumCount: 1, temp);
        var pieces = TokenizerBuilder.Pieces(Suite, minimumCount: 1);
        foreach (string word in Suite.SelectMany(t => t.Split(' ')).Distinct())
        {
            var ids = Encode(tokenizer, word);
            Assert.True(ids.Count == 1, $"'{word}' encodes to {ids.Count} tokens");
            Assert.Equal("▁" + word, pieces[ids[0] - TokenizerBuilder.FirstPieceId].Piece);
        }
        Assert.Equal(9, Encode(tokenizer, "How many shoes are there? Answer with a number.").Count);
        Assert.Equal(3, Encode(tokenizer, "Sneaker, Bag, T-shirt/top").Count);
    }

    [Fact]
    public void The_suite_decodes_back_to_itself()
    {
        using var temp = new TempFolder();
        var tokenizer = Load(Suite, minimumCount: 2, temp);
        foreach (string text in Suite)
            Assert.Equal(text, tokenizer.Decode(tokenizer.EncodeToIds(text)));
    }

    [Fact]
    public void An_unseen_word_is_its_longest_known_prefix_then_characters_or_bytes_and_decodes_back()
    {
        using var temp = new TempFolder();
        var tokenizer = Load(Suite, minimumCount: 1, temp);
        var pieces = TokenizerBuilder.Pieces(Suite, minimumCount: 1).Select(p => p.Piece).ToList();
        int Id(string piece) => TokenizerBuilder.FirstPieceId + pieces.IndexOf(piece);

        Assert.Equal([Id("▁Sneaker"), Id("s")], Encode(tokenizer, "Sneakers"));
        // "é" and "☂" are not in the corpus: their UTF-8 bytes, ids 3 + byte.
        Assert.Equal([Id("▁"), 3 + 0xC3, 3 + 0xA9, Id("t"), Id("▁"), 3 + 0xE2, 3 + 0x98, 3 + 0x82], Encode(tokenizer, "ét ☂"));
        foreach (string text in new[] { "Sneakers", "ét ☂", "Zebra 42/17, really?", "What is in the top left? <image> yes", "x", " two  spaces " })
            Assert.Equal(text, tokenizer.Decode(tokenizer.EncodeToIds(text)));
    }

    [Fact]
    public void The_written_model_loads_through_the_LLaMA_path_with_the_special_ids_the_builder_says()
    {
        using var temp = new TempFolder();
        var tokenizer = Load(Suite, minimumCount: 1, temp);
        Assert.Equal(SentencePieceModelFile.UnknownId, tokenizer.UnknownId);
        Assert.Equal(SentencePieceModelFile.BeginningOfSentenceId, tokenizer.BeginningOfSentenceId);
        Assert.Equal(SentencePieceModelFile.EndOfSentenceId, tokenizer.EndOfSentenceId);
        Assert.Equal(("<unk>", "<s>", "</s>"), (tokenizer.UnknownToken, tokenizer.BeginningOfSentenceToken, tokenizer.EndOfSentenceToken));
        Assert.True(tokenizer.ByteFallback);
        Assert.Equal(TokenizerBuilder.FirstPieceId + TokenizerBuilder.Pieces(Suite, minimumCount: 1).Count, tokenizer.Vocabulary.Count);
    }

    [Fact]
    public void The_same_corpus_in_any_order_gives_the_same_bytes()
    {
        byte[] built = TokenizerBuilder.Build(Suite, minimumCount: 2);
        Assert.Equal(built, TokenizerBuilder.Build(Suite, minimumCount: 2));
        Assert.Equal(built, TokenizerBuilder.Build(Suite.Reverse(), minimumCount: 2));
        Assert.NotEqual(built, TokenizerBuilder.Build(Suite, minimumCount: 1));
        using var temp = new TempFolder();
        Assert.Equal(built, File.ReadAllBytes(TokenizerBuilder.Write(temp.Path, Suite, minimumCount: 2)));
    }

    [Fact]
    public void A_minimum_count_below_one_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenizerBuilder.Pieces(Suite, minimumCount: 0));
    }
}
