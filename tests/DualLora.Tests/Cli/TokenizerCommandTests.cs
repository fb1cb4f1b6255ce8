using DualLora.Language;
using DualLora.Multimodal;

namespace DualLora.Tests.Cli;

public class TokenizerCommandTests
{
    [Fact]
    public void Data_tokenizer_writes_a_tokenizer_model_that_loads_as_a_LLaMA_tokenizer()
    {
        using var temp = new TempFolder();
        string[] texts = ["What is in the top left? <image>", "How many shoes are there?", "yes", "Sneaker, Bag, T-shirt/top", "yes"];
        File.WriteAllLines(temp.File("corpus.txt"), texts);
        string folder = temp.File("tokenizer");

        var (exit, output, error) = CommandLine.Run("data", "tokenizer", "--corpus", temp.File("corpus.txt"), "--out", folder, "--min-count", "2");
        Assert.Equal(0, exit);
        Assert.Equal("", error);
        // Only "yes" is seen twice: the pieces are the same as the library builds for the same texts.
        Assert.Equal(TokenizerBuilder.Build(texts, minimumCount: 2), File.ReadAllBytes(Path.Combine(folder, "tokenizer.model")));
        var tokenizer = HuggingFaceModels.LoadTokenizer(folder);
        Assert.Equal([1, TokenizerBuilder.FirstPieceId + 2], tokenizer.EncodeToIds("yes"));   // after ▁y and ▁ye
        Assert.Contains("<unk> 0, <s> 1, </s> 2", output);
        // "yes" twice is 2 tokens; the other 15 words are "▁" and their characters: 33 + 26 + 26.
        Assert.Contains("5 texts, 17 words, 87 tokens", output);
    }

    [Fact]
    public void Data_tokenizer_explains_itself_and_names_what_is_missing()
    {
        var (exit, output, _) = CommandLine.Run("data", "tokenizer", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("  data tokenizer --corpus FILE.txt --out DIR", output);

        (exit, _, var error) = CommandLine.Run("data", "tokenizer", "--out", "somewhere");
        Assert.Equal(2, exit);
        Assert.Contains("data tokenizer needs --corpus FILE.txt", error);

        using var temp = new TempFolder();
        (exit, _, error) = CommandLine.Run("data", "tokenizer", "--corpus", temp.File("missing.txt"), "--out", temp.Path);
        Assert.Equal(2, exit);
        Assert.Contains("missing.txt: no such corpus file", error);
    }
}
