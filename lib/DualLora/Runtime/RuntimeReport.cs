using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;

namespace DualLora.Runtime;

/// <summary>One line of the environment report.</summary>
public sealed record ReportRow(string Item, string Value);

/// <summary>What a run is running on: shown at the top of every notebook and by the CLI's <c>env</c> command.</summary>
public static class RuntimeReport
{
    public static IReadOnlyList<ReportRow> Describe(RuntimeEnvironment environment, torch.Device device)
    {
        var native = TorchRuntime.Loaded;
        string root = Path.GetDirectoryName(environment.SourceFile)!;
        // Paths inside the project are shown relative to it, so a report reads the same on every machine.
        string Show(string path) => path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? Path.GetRelativePath(root, path) : path;
        string Exists(string path) => Directory.Exists(path) ? Show(path) : $"{Show(path)} (not present)";
        return
        [
            new("environment file", Path.GetFileName(environment.SourceFile) + " at the project root"),
            new("profile", environment.Profile.ToString().ToLowerInvariant()),
            new("backend", environment.Backend.ToString().ToLowerInvariant()),
            new("device", $"{device} (asked for \"{environment.Device}\"; CUDA available: {torch.cuda.is_available()})"),
            new("threads", $"{torch.get_num_threads()} (environment.json: {(environment.Threads == 0 ? "LibTorch default" : environment.Threads)})"),
            new("seed", environment.Seed.ToString()),
            new("TorchSharp", typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "?"),
            new("LibTorch", torch.__version__),
            new("native library", native == null ? "not loaded through TorchRuntime" : native.Reason),
            new("OS", $"{RuntimeInformation.OSDescription} ({RuntimeInformation.ProcessArchitecture})"),
            new(".NET", RuntimeInformation.FrameworkDescription),
            new("data: fashion_mnist", Exists(environment.Data.FashionMnist)),
            new("data: models", Exists(environment.Data.Models)),
            new("data: runs", Show(environment.Data.Runs)),
        ];
    }
}
