using System.Diagnostics;

namespace DualLora.Cli;

/// <summary>This command line started again as a child process, under the host that runs it now.</summary>
static class CliProcess
{
    /// <summary>
    /// <c>dotnet DualLora.Cli.dll ARGS</c>, or the apphost with ARGS when that is what runs; from another host (a test
    /// runner), the dotnet host the SDK names in DOTNET_HOST_PATH, else the one on the PATH.
    /// </summary>
    public static ProcessStartInfo StartInfo(params string[] arguments)
    {
        string cli = typeof(CliProcess).Assembly.Location;
        string current = Environment.ProcessPath ?? "dotnet";
        bool apphost = Path.GetFileNameWithoutExtension(current) == Path.GetFileNameWithoutExtension(cli);
        string host = apphost || Path.GetFileNameWithoutExtension(current) == "dotnet" ? current
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo(host) { UseShellExecute = false };
        if (!apphost) start.ArgumentList.Add(cli);
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        return start;
    }
}
