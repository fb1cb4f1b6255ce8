using DualLora.IO;
using TorchSharp;

namespace DualLora.Runtime;

/// <summary>The LibTorch build TorchSharp runs on.</summary>
public enum Backend { Cpu, Cuda }

/// <summary>How big a run is: <c>smoke</c> (CI, minutes) or <c>full</c> (the committed outputs and published numbers).</summary>
public enum Profile { Smoke, Full }

/// <summary>Where the data lives. Relative paths are resolved against the folder of environment.json.</summary>
/// <param name="FashionMnist">Folder of the Fashion-MNIST idx files (Debian's dataset-fashion-mnist).</param>
/// <param name="Models">Folder of the small pretrained base models and real checkpoints.</param>
/// <param name="Runs">Folder where training runs write checkpoints and logs.</param>
public sealed record DataPaths(string FashionMnist, string Models, string Runs);

/// <summary>
/// The runtime environment of every command and notebook, read from <c>environment.json</c>:
/// <code>
/// { "backend": "cpu", "device": "auto", "threads": 0, "seed": 1234, "profile": "full",
///   "data": { "fashion_mnist": "...", "models": "data/models", "runs": "runs" } }
/// </code>
/// <c>DUALLORA_PROFILE</c> (smoke or full) overrides the profile, so CI can run every notebook small.
/// </summary>
public sealed record RuntimeEnvironment(
    string SourceFile, Backend Backend, string Device, int Threads, long Seed, Profile Profile, DataPaths Data)
{
    public const string FileName = "environment.json";
    public const string ProfileVariable = "DUALLORA_PROFILE";

    static readonly string[] TopLevelKeys = ["backend", "device", "threads", "seed", "profile", "data"];
    static readonly string[] DataKeys = ["fashion_mnist", "models", "runs"];

    /// <summary>Finds environment.json in <paramref name="startFolder"/> (default: the current folder) or the nearest folder above it.</summary>
    public static RuntimeEnvironment Find(string? startFolder = null)
    {
        var folder = new DirectoryInfo(startFolder ?? Directory.GetCurrentDirectory());
        for (var f = folder; f != null; f = f.Parent)
        {
            string candidate = Path.Combine(f.FullName, FileName);
            if (File.Exists(candidate)) return Load(candidate);
        }
        throw new FileNotFoundException($"No {FileName} in {folder.FullName} or any folder above it.");
    }

    public static RuntimeEnvironment Load(string path)
    {
        string full = Path.GetFullPath(path);
        var root = JsonObjectReader.ReadFile(full, allowComments: true);
        root.RejectUnknownFields(TopLevelKeys);

        var backend = root.Choice("backend", new Dictionary<string, Backend> { ["cpu"] = Backend.Cpu, ["cuda"] = Backend.Cuda });
        string device = root.String("device");
        if (!IsDeviceName(device))
            throw root.FieldError("device", $"is \"{device}\"; allowed values: \"auto\", \"cpu\", \"cuda\", \"cuda:N\".");
        if (backend == Backend.Cpu && device.StartsWith("cuda", StringComparison.Ordinal))
            throw root.FieldError("device", $"is \"{device}\" but 'backend' is \"cpu\"; use \"auto\" or \"cpu\", or the \"cuda\" backend.");
        int threads = root.Int("threads", 0, 4096);
        long seed = root.Long("seed", 0, long.MaxValue);
        var profiles = new Dictionary<string, Profile> { ["smoke"] = Profile.Smoke, ["full"] = Profile.Full };
        var profile = root.Choice("profile", profiles);
        if (Environment.GetEnvironmentVariable(ProfileVariable) is { Length: > 0 } overridden)
            profile = profiles.TryGetValue(overridden, out var p) ? p
                : throw new InvalidDataException($"environment variable {ProfileVariable} is \"{overridden}\"; allowed values: \"smoke\", \"full\".");

        var data = root.Object("data");
        data.RejectUnknownFields(DataKeys);
        string folder = Path.GetDirectoryName(full)!;
        string DataPath(string key) => Path.GetFullPath(Path.Combine(folder, data.String(key)));
        var paths = new DataPaths(DataPath("fashion_mnist"), DataPath("models"), DataPath("runs"));

        return new RuntimeEnvironment(full, backend, device, threads, seed, profile, paths);
    }

    /// <summary>
    /// Loads TorchSharp (see <see cref="TorchRuntime"/>), sets the thread count and the seed, and returns
    /// the device to use: for <c>auto</c>, CUDA when TorchSharp reports it available, else the CPU.
    /// </summary>
    public torch.Device Apply()
    {
        TorchRuntime.EnsureLoaded();
        if (Threads > 0) torch.set_num_threads(Threads);
        torch.manual_seed(Seed);
        if (Backend == Backend.Cuda) RequireCuda();
        return Device switch
        {
            "auto" => torch.cuda.is_available() ? torch.CUDA : torch.CPU,
            "cpu" => torch.CPU,
            _ when torch.cuda.is_available() => torch.device(Device),
            _ => throw new InvalidOperationException($"{SourceFile}: device \"{Device}\" was asked for, but TorchSharp reports no CUDA device."),
        };
    }

    /// <summary>Initialises TorchSharp's CUDA backend, or says what to install when the CPU build of LibTorch is what loaded.</summary>
    void RequireCuda()
    {
        bool available;
        try
        {
            available = torch.TryInitializeDeviceType(DeviceType.CUDA);
        }
        catch (NotSupportedException)   // TorchSharp's own loader, where TorchRuntime leaves loading to it, when no CUDA package is restored
        {
            available = false;
        }
        if (available) return;
        string? native = TorchRuntime.Loaded?.NativeLibrary;
        bool cudaLibTorch = native != null && File.Exists(Path.Combine(Path.GetDirectoryName(native)!, "libtorch_cuda.so"));
        throw new InvalidDataException(cudaLibTorch
            ? $"{SourceFile}: key 'backend' is \"cuda\", and the CUDA build of LibTorch is installed, but TorchSharp reports no usable CUDA device. " +
              "Check the NVIDIA driver (nvidia-smi), or set \"backend\": \"cpu\"."
            : $"{SourceFile}: key 'backend' is \"cuda\", but only the CPU build of LibTorch is installed. " +
              "Install TorchSharp's CUDA packages: reference TorchSharp-cuda-linux (which brings the CUDA LibTorch packages, libtorch-cuda-12.8-linux-x64) " +
              "in place of TorchSharp-cpu (in a notebook: #r \"nuget: TorchSharp-cuda-linux, 0.107.0\"), or set \"backend\": \"cpu\".");
    }

    static bool IsDeviceName(string device) =>
        device is "auto" or "cpu" or "cuda" ||
        (device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(device[5..], out int index) && index >= 0);
}
