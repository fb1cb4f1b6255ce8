
namespace DualLora.Tests.Cli;

public class DataCommandsTests
{
    [Fact]
    public void Data_export_writes_the_suite_and_prints_every_tasks_chance_level()
    {
        using var temp = new TempFolder();
        var (exit, output, error) = CommandLine.Run("data", "export", temp.Path, "--seed", "0", "--train", "8", "--validation", "2", "--evaluation", "3");
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        Assert.Equal(13, Directory.GetFiles(temp.File("images"), "*.png").Length);
        Assert.Equal(["evaluation.json", "training-corpus.txt", "training.json", "validation.json"], Directory.GetFiles(temp.Path).Select(Path.GetFileName).Order());
        // The tokenizer's corpus: each of the 56 training samples' instruction and answer, one a line.
        Assert.Equal(112, File.ReadAllLines(temp.File("training-corpus.txt")).Length);
        Assert.Contains("8 scenes, 56 samples", output);
        foreach (string task in new[] { "name", "group", "body_part", "count", "presence", "list", "reversed_list" })
            Assert.Contains($"\n{task} ", output);
    }

    [Theory]
    [InlineData("--seed", "-1")]
    [InlineData("--train", "0")]
    public void A_bad_number_is_a_usage_error_naming_the_option(string option, string value)
    {
        using var temp = new TempFolder();
        var (exit, _, error) = CommandLine.Run("data", "export", temp.Path, option, value);
        Assert.Equal(2, exit);
        Assert.Contains(option, error);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Data_export_explains_itself()
    {
        var (exit, output, _) = CommandLine.Run("data", "export", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("  data export DIR [--seed N]", output);
    }
}
