
namespace DualLora.Tests.Cli;

public class CommandsTests
{
    [Theory]
    [InlineData("walkthrough", "--help")]
    [InlineData("walkthrough", "-h")]
    [InlineData("walkthrough", "--profile", "smoke", "--help")]
    [InlineData("notebooks", "run", "--help")]
    [InlineData("env", "--help")]
    [InlineData("bench", "train", "--help")]
    [InlineData("bench", "data", "--help")]
    [InlineData("bench", "adapters", "--help")]
    [InlineData("site", "build", "--help")]
    [InlineData("site", "check", "--help")]
    public void Every_command_explains_itself_and_does_nothing_else(params string[] args)
    {
        var (exit, output, error) = CommandLine.Run(args);
        Assert.Equal(0, exit);
        Assert.Equal("", error);
        string command = string.Join(" ", args.TakeWhile(a => !a.StartsWith('-')).Take(2).Where(a => a is not "smoke"));
        Assert.Contains($"  {command}", output);
        Assert.Contains("exit codes", output);
        Assert.DoesNotContain("commands:", output);   // one command's help, not the whole list
    }

    [Fact]
    public void A_group_word_with_help_lists_the_commands_under_it()
    {
        var (exit, output, _) = CommandLine.Run("bench", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("bench train", output);
        Assert.Contains("bench adapters", output);
        Assert.DoesNotContain("walkthrough", output);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("help")]
    public void Help_alone_lists_every_command(string word)
    {
        var (exit, output, _) = CommandLine.Run(word);
        Assert.Equal(0, exit);
        foreach (string command in new[] { "walkthrough", "notebooks run", "env", "bench train", "bench data", "bench adapters", "site build", "site check" })
            Assert.Contains($"  {command}", output);
    }

    [Fact]
    public void An_unknown_option_is_a_usage_error_naming_it()
    {
        var (exit, _, error) = CommandLine.Run("walkthrough", "--fast");
        Assert.Equal(2, exit);
        Assert.Contains("unknown option '--fast'", error);
    }
}
