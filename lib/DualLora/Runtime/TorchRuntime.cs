using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DualLora.IO;
using TorchSharp;

namespace DualLora.Runtime;

/// <summary>How TorchSharp's native library was made loadable on this machine.</summary>
/// <param name="NativeLibrary">The libLibTorchSharp that TorchSharp now calls into.</param>
/// <param name="Patched">True when that is a private copy with GLIBCXX_3.4.32 marked weak.</param>
/// <param name="Reason">One sentence a person can read in an environment report.</param>
public sealed record TorchNativeLoad(string? NativeLibrary, bool Patched, string Reason);

/// <summary>
/// Makes TorchSharp 0.107.0 load on systems whose libstdc++ is older than GCC 13 (Debian 12, Ubuntu 22.04).
/// Its libLibTorchSharp.so declares a need for GLIBCXX_3.4.32, whose only symbol
/// (<c>_ZSt21ios_base_library_initv</c>) GCC 13 headers reference but nothing calls; the loader refuses
/// the library unless that need is marked weak. Where the system libstdc++ lacks the version, this
/// prepares a private copy with the need marked weak (two bytes), links LibTorch's libraries beside it
/// (its RUNPATH is $ORIGIN), loads it, and points TorchSharp's P/Invokes at it. Nothing is changed where
/// the system does not need it, and the package cache is never altered.
/// Call <see cref="EnsureLoaded"/> before the first use of <c>torch</c>; it is cheap after the first call.
/// </summary>
public static class TorchRuntime
{
    const string TorchSharpNative = "libLibTorchSharp.so";
    const string LibStdCxx = "libstdc++.so.6";
    /// <summary>The one version need that is known to be safe to weaken (see the class comment).</summary>
    public const string UnusedLibStdCxxVersion = "GLIBCXX_3.4.32";

    static readonly object Gate = new();
    static TorchNativeLoad? loaded;

    /// <summary>How the native library was loaded, or null before <see cref="EnsureLoaded"/>.</summary>
    public static TorchNativeLoad? Loaded => loaded;

    public static TorchNativeLoad EnsureLoaded()
    {
        lock (Gate)
        {
            return loaded ??= Load();
        }
    }

    static TorchNativeLoad Load()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return new TorchNativeLoad(null, false, "not Linux x64: TorchSharp loads its native library itself");

        string original = FindTorchSharpNative()
            ?? throw new FileNotFoundException(
                $"{TorchSharpNative} was not found beside the application or in the TorchSharp package. " +
                "Reference the TorchSharp-cpu package (in a notebook: #r \"nuget: TorchSharp-cpu, 0.107.0\").");

        var missing = MissingLibStdCxxVersions(original);
        if (missing.Count == 0)
            return new TorchNativeLoad(original, false, $"the system {LibStdCxx} provides every version TorchSharp needs");
        if (missing.Any(v => v != UnusedLibStdCxxVersion))
            throw new PlatformNotSupportedException(
                $"{original} needs {string.Join(", ", missing)} from {LibStdCxx}, which this system lacks. " +
                $"Only {UnusedLibStdCxxVersion} is known to be unused and safe to weaken; install a newer libstdc++ (GCC 13 or later).");

        string libTorchFolder = FindLibTorchFolder(original)
            ?? throw new FileNotFoundException(
                $"LibTorch's libtorch_cpu.so was not found beside {original} or in a libtorch-cpu-linux-x64 package. " +
                "Reference the TorchSharp-cpu package (in a notebook: #r \"nuget: TorchSharp-cpu, 0.107.0\").");
        string patched = PreparePatchedCopy(original, libTorchFolder);
        IntPtr handle = NativeLibrary.Load(patched);
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly,
            (name, _, _) => name == "LibTorchSharp" ? handle : IntPtr.Zero);
        return new TorchNativeLoad(patched, true,
            $"the system {LibStdCxx} lacks {UnusedLibStdCxxVersion}: loaded a copy with that need marked weak");
    }

    /// <summary>The libLibTorchSharp.so the process would load: beside the app, or in the TorchSharp package.</summary>
    public static string? FindTorchSharpNative() =>
        FindTorchSharpNative(AppContext.BaseDirectory, Path.GetDirectoryName(typeof(torch).Assembly.Location));

    internal static string? FindTorchSharpNative(string appFolder, string? torchSharpAssemblyFolder)
    {
        var candidates = new List<string> { Path.Combine(appFolder, "runtimes", "linux-x64", "native"), appFolder };
        // In a notebook, TorchSharp.dll is loaded from <packages>/torchsharp/<version>/lib/<tfm>/.
        if (!string.IsNullOrEmpty(torchSharpAssemblyFolder))
        {
            candidates.Add(Path.GetFullPath(Path.Combine(torchSharpAssemblyFolder, "..", "..", "runtimes", "linux-x64", "native")));
            candidates.Add(torchSharpAssemblyFolder);
        }
        return candidates.Select(f => Path.Combine(f, TorchSharpNative)).FirstOrDefault(File.Exists);
    }

    internal static string? FindLibTorchFolder(string torchSharpNative)
    {
        string beside = Path.GetDirectoryName(torchSharpNative)!;
        if (File.Exists(Path.Combine(beside, "libtorch_cpu.so"))) return beside;

        // Package cache layout: <packages>/torchsharp/<v>/runtimes/linux-x64/native -> <packages>/libtorch-cpu-linux-x64/<v>/runtimes/linux-x64/native
        string packages = Path.GetFullPath(Path.Combine(beside, "..", "..", "..", "..", ".."));
        string libTorchPackage = Path.Combine(packages, "libtorch-cpu-linux-x64");
        if (!Directory.Exists(libTorchPackage)) return null;
        return Directory.GetDirectories(libTorchPackage)
            .Select(v => (Version: Version.TryParse(Path.GetFileName(v), out var parsed) ? parsed : new Version(0, 0),
                          Folder: Path.Combine(v, "runtimes", "linux-x64", "native")))
            .Where(c => File.Exists(Path.Combine(c.Folder, "libtorch_cpu.so")))
            .OrderByDescending(c => c.Version)
            .Select(c => c.Folder)
            .FirstOrDefault();
    }

    /// <summary>The versions <paramref name="library"/> needs from libstdc++ that the system's libstdc++ does not define.</summary>
    public static IReadOnlyList<string> MissingLibStdCxxVersions(string library)
    {
        string system = SystemLibStdCxx()
            ?? throw new FileNotFoundException($"{LibStdCxx} could not be found in this process or on the system.");
        var defined = ElfSymbolVersions.ReadDefinedVersions(system);
        return ElfSymbolVersions.ReadNeededVersions(library)
            .Where(v => v.File == LibStdCxx && !v.IsWeak && !defined.Contains(v.Name))
            .Select(v => v.Name)
            .ToList();
    }

    /// <summary>The path of the libstdc++ the dynamic loader uses for this process.</summary>
    public static string? SystemLibStdCxx()
    {
        string? Mapped() => File.ReadLines("/proc/self/maps")
            .Select(line => line.IndexOf('/') is var slash and >= 0 ? line[slash..] : null)
            .FirstOrDefault(p => p != null && Path.GetFileName(p).StartsWith(LibStdCxx, StringComparison.Ordinal)); // libstdc++.so.6.0.30
        if (Mapped() is { } path) return path;
        // The runtime host usually maps it already; if not, let the loader pick it by its usual search.
        return NativeLibrary.TryLoad(LibStdCxx, out _) ? Mapped() : null;
    }

    /// <summary>
    /// A private folder holding the patched copy and links to every LibTorch library. Keyed by the
    /// original's content and the LibTorch folder, so a new TorchSharp version or another build output
    /// gets its own folder; safe when several processes prepare it at once (each file appears by an
    /// atomic rename).
    /// </summary>
    static string PreparePatchedCopy(string original, string libTorchFolder)
    {
        byte[] identity = [.. File.ReadAllBytes(original), .. System.Text.Encoding.UTF8.GetBytes(libTorchFolder)];
        string key = Convert.ToHexString(SHA256.HashData(identity))[..16].ToLowerInvariant();
        string folder = Path.Combine(NativeCacheRoot(), $"libtorchsharp-{key}");
        Directory.CreateDirectory(folder);

        foreach (string library in Directory.GetFiles(libTorchFolder).Where(f => Path.GetFileName(f).Contains(".so")))
        {
            string name = Path.GetFileName(library);
            if (name == TorchSharpNative) continue;
            string link = Path.Combine(folder, name);
            if (File.Exists(link)) continue;
            string temporary = link + $".{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
            File.CreateSymbolicLink(temporary, library);
            File.Move(temporary, link, overwrite: true);
        }

        string patched = Path.Combine(folder, TorchSharpNative);
        bool ready = File.Exists(patched) && ElfSymbolVersions.ReadNeededVersions(patched)
            .Any(v => v.File == LibStdCxx && v.Name == UnusedLibStdCxxVersion && v.IsWeak);
        if (!ready)
        {
            string staging = patched + $".{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
            File.Copy(original, staging);
            try
            {
                ElfSymbolVersions.MarkNeededVersionWeak(staging, LibStdCxx, UnusedLibStdCxxVersion);
                File.Move(staging, patched, overwrite: true);
            }
            finally
            {
                File.Delete(staging);
            }
        }
        return patched;
    }

    /// <summary>DUALLORA_NATIVE_CACHE if set, else $XDG_CACHE_HOME/duallora-notebooks, else ~/.cache/duallora-notebooks.</summary>
    public static string NativeCacheRoot()
    {
        if (Environment.GetEnvironmentVariable("DUALLORA_NATIVE_CACHE") is { Length: > 0 } explicitRoot) return explicitRoot;
        string cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(cache, "duallora-notebooks", "native");
    }
}
