using System.Globalization;
using DualLora.Data;
using DualLora.IO;
using DualLora.Runtime;

namespace DualLora.Cli;

/// <summary>The <c>data</c> commands: export the Fashion-MNIST scene suite as LLaVA instruction data.</summary>
static class DataCommands
{
    public static int Run(string[] args, TextWriter output) => args switch
    {
        ["export", .. var rest] => Export(Options.Parse(rest, ["--seed", "--train", "--validation", "--evaluation"], []), output),
        _ => throw new UsageException($"unknown data command '{string.Join(" ", args)}'; use data export."),
    };

    static int Export(Options options, TextWriter output)
    {
        if (options.Positional is not [var folder]) throw new UsageException("data export needs the output folder, e.g. data export out/scenes.");
        var defaults = new SceneSuiteOptions();
        var suiteOptions = new SceneSuiteOptions(
            Seed(options, defaults.Seed),
            options.Integer("--train", defaults.TrainingScenes),
            options.Integer("--validation", defaults.ValidationScenes),
            options.Integer("--evaluation", defaults.EvaluationScenes));

        var environment = RuntimeEnvironment.Find();
        environment.Apply();
        // The shipped test split is always there; the suite partitions its 10,000 images among its own splits.
        using var source = FashionMnist.Load(environment, FashionMnistSplit.Test);
        var suite = SceneSuite.Build(source, suiteOptions);
        var exported = SceneSuiteExport.Write(suite, source, folder);

        output.WriteLine($"data export: seed {suiteOptions.Seed}, scenes from the {source.Count:N0} images of the Fashion-MNIST test split");
        foreach (var split in SceneSuite.Splits)
            output.WriteLine($"  {exported.JsonFiles[split]}: {suite.Scenes(split).Count:N0} scenes, {suite.Samples(split).Count:N0} samples, " +
                             $"from {suite.SourceImages(split).Count:N0} source images");
        output.WriteLine($"  {exported.ImageFolder}: {exported.ImageCount:N0} PNGs, 56x56 grey");
        // The text the small model's tokenizer is built from (data tokenizer --corpus).
        string corpus = Path.Combine(Path.GetFullPath(folder), "training-corpus.txt");
        AtomicFile.WriteAllText(corpus, string.Concat(suite.TrainingTexts().Select(text => text + "\n")));
        output.WriteLine($"  {corpus}: the training instructions and answers, one a line");
        output.WriteLine();
        PrintMajorityRates(suite, output);
        return 0;
    }

    static int Seed(Options options, int fallback) => options.Value("--seed") is not { } text ? fallback
        : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int seed) ? seed
        : throw new UsageException($"--seed must be a whole number from 0 to {int.MaxValue}, got '{text}'.");

    static void PrintMajorityRates(SceneSuite suite, TextWriter output)
    {
        output.WriteLine("chance level: the most common answer of each task and its rate");
        output.WriteLine($"{"task",-14}{string.Concat(SceneSuite.Splits.Select(s => $"{SceneSuite.SplitName(s),-22}"))}".TrimEnd());
        foreach (var task in suite.MajorityRates().GroupBy(r => r.Task))
            output.WriteLine($"{task.Key,-14}{string.Concat(task.Select(r => $"{Percent(r.Rate),6} {Shorten(r.Answer),-15}"))}".TrimEnd());
    }

    static string Percent(double rate) => (100 * rate).ToString("F1", CultureInfo.InvariantCulture) + "%";

    static string Shorten(string answer) => answer.Length <= 14 ? answer : answer[..13] + "…";
}
