using DualLora.Data;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Runtime;

namespace DualLora.Tests.Data;

public class ShippedTokenizerTests
{
    static readonly string Root = Path.GetDirectoryName(RuntimeEnvironment.Find(AppContext.BaseDirectory).SourceFile)!;
    static readonly string ShippedFolder = Path.Combine(Root, "data", "tokenizer");

    static SceneSuite DefaultSuite(FashionMnist source) => SceneSuite.Build(source, new SceneSuiteOptions());

    [Fact]
    public void The_shipped_tokenizer_is_the_one_the_default_suites_training_text_builds()
    {
        // data export (default options) then data tokenizer --corpus training-corpus.txt, as data/tokenizer/README.md says.
        using var source = FashionMnist.Load(RuntimeEnvironment.Find(AppContext.BaseDirectory), FashionMnistSplit.Test);
        byte[] rebuilt = TokenizerBuilder.Build(DefaultSuite(source).TrainingTexts(), minimumCount: 1);
        Assert.Equal(rebuilt, File.ReadAllBytes(Path.Combine(ShippedFolder, TokenizerBuilder.ModelFileName)));
    }

    [Fact]
    public void Every_word_of_the_evaluation_split_is_one_token_of_the_shipped_tokenizer()
    {
        using var source = FashionMnist.Load(RuntimeEnvironment.Find(AppContext.BaseDirectory), FashionMnistSplit.Test);
        var tokenizer = HuggingFaceModels.LoadTokenizer(ShippedFolder);
        var words = DefaultSuite(source).Samples(SceneSplit.Evaluation)
            .SelectMany(s => $"{s.Instruction} {s.Answer}".Split(' ', StringSplitOptions.RemoveEmptyEntries)).Distinct().ToList();
        Assert.NotEmpty(words);
        foreach (string word in words)
            Assert.True(tokenizer.EncodeToIds(word, addBeginningOfSentence: false, addEndOfSentence: false).Count == 1, $"'{word}' is not one token");
    }
}
