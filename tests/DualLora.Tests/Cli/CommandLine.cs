using DualLora.Cli;

namespace DualLora.Tests.Cli;

static class CommandLine
{
    /// <summary>Runs the CLI in this process: its exit code and what it wrote to standard output and error.</summary>
    public static (int Exit, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = Commands.Run(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }
}
