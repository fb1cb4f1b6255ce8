using DualLora.Language;
using DualLora.Multimodal;

namespace DualLora.Cli;

/// <summary>
/// <c>data tokenizer</c>: builds the small model's SentencePiece <c>tokenizer.model</c> from a text file (one text a
/// line), loads it back the way a LLaMA tokenizer is loaded, and reports what it holds.
/// </summary>
static class TokenizerCommand
{
    public static int Run(Options options, TextWriter output)
    {
        if (options.Positional.Count > 0) throw new UsageException($"data tokenizer takes no file arguments (got '{options.Positional[0]}'); use --corpus FILE.txt.");
        string corpusFile = options.Value("--corpus") ?? throw new UsageException("data tokenizer needs --corpus FILE.txt.");
        string folder = options.Value("--out") ?? throw new UsageException("data tokenizer needs --out DIR.");
        int minimumCount = options.Integer("--min-count", 1);
        if (!File.Exists(corpusFile)) throw new FileNotFoundException($"{Path.GetFullPath(corpusFile)}: no such corpus file.");

        var texts = File.ReadAllLines(corpusFile);
        string path = TokenizerBuilder.Write(folder, texts, minimumCount);
        var tokenizer = HuggingFaceModels.LoadTokenizer(folder);
        int tokens = texts.Sum(t => tokenizer.EncodeToIds(t, addBeginningOfSentence: false, addEndOfSentence: false).Count);
        int words = texts.Sum(t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        output.WriteLine($"tokenizer: {path}");
        output.WriteLine($"  {tokenizer.Vocabulary.Count} pieces: <unk> {tokenizer.UnknownId}, <s> {tokenizer.BeginningOfSentenceId}, </s> {tokenizer.EndOfSentenceId}, " +
            $"bytes 3-{TokenizerBuilder.FirstPieceId - 1}, corpus pieces from {TokenizerBuilder.FirstPieceId} (words seen at least {minimumCount} times)");
        output.WriteLine($"  corpus: {texts.Length} texts, {words} words, {tokens} tokens ({(double)tokens / Math.Max(words, 1):F2} tokens a word)");
        return 0;
    }
}
