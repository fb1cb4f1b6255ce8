using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DualLora.IO;
using TorchSharp;

namespace DualLora.Runtime;

/// <summary>How TorchSharp's native library was made loadable on this machine.</summary>
/// <param name="NativeLibrary">The libLibTorchSharp that TorchSharp now calls into.</param>
/// <param name="Patched">True when that is a private copy with GLIBCXX_3.4.32 marked weak.</param>
/// <param name="Guard">The LibTorch error guard TorchSharp's calls go through, or null where none is needed.</param>
/// <param name="Reason">One sentence a person can read in an environment report.</param>
public sealed record TorchNativeLoad(string? NativeLibrary, bool Patched, string? Guard, string Reason);

/// <summary>
/// Loads TorchSharp 0.107.0's native library on Linux so that it works and fails as a .NET library should.
/// <para>
/// Loading: its libLibTorchSharp.so declares a need for GLIBCXX_3.4.32, whose only symbol
/// (<c>_ZSt21ios_base_library_initv</c>) GCC 13 headers reference but nothing calls; on systems whose
/// libstdc++ is older (Debian 12, Ubuntu 22.04) the loader refuses the library unless that need is marked
/// weak. Where the system lacks the version, this prepares a private copy with the need marked weak (two
/// bytes) and links LibTorch's libraries beside it (its RUNPATH is $ORIGIN). The package cache is never altered.
/// </para>
/// <para>
/// Errors: a few of its entry points (matmul among them) let LibTorch's C++ exceptions escape into
/// managed code, which aborts the process. The guard library built from Runtime/Native/torch_guard.cpp
/// wraps them; this loads libLibTorchSharp.so, then the guard (whose dependency is that loaded copy), and
/// points TorchSharp's P/Invokes at the guard. On Windows such exceptions already surface as
/// SEHException, and macOS is left as TorchSharp loads it.
/// </para>
/// Call <see cref="EnsureLoaded"/> before the first use of <c>torch</c>; it is cheap after the first call.
/// </summary>
public static class TorchRuntime
{
    const string TorchSharpNative = "libLibTorchSharp.so";
    const string LibStdCxx = "libstdc++.so.6";
    /// <summary>The guard library, built with DualLora.dll and copied beside it.</summary>
    public const string GuardLibrary = "libduallora_torch_guard.so";
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
            return new TorchNativeLoad(null, false, null, "not Linux x64: TorchSharp loads its native library itself");

        string original = FindTorchSharpNative()
            ?? throw new FileNotFoundException(
                $"{TorchSharpNative} was not found beside the application or in the TorchSharp package. " +
                "Reference the TorchSharp-cpu package (in a notebook: #r \"nuget: TorchSharp-cpu, 0.107.0\").");

        var missing = MissingLibStdCxxVersions(original);
        if (missing.Any(v => v != UnusedLibStdCxxVersion))
            throw new PlatformNotSupportedException(
                $"{original} needs {string.Join(", ", missing)} from {LibStdCxx}, which this system lacks. " +
                $"Only {UnusedLibStdCxxVersion} is known to be unused and safe to weaken; install a newer libstdc++ (GCC 13 or later).");
        bool patch = missing.Count > 0;

        string libTorchFolder = FindLibTorchFolder(original)
            ?? throw new FileNotFoundException(
                $"LibTorch's libtorch_cpu.so was not found beside {original} or in a libtorch-cpu-linux-x64 package. " +
                "Reference the TorchSharp-cpu package (in a notebook: #r \"nuget: TorchSharp-cpu, 0.107.0\").");
        // A build output holds LibTorch beside the original; a notebook's package cache does not, so the
        // library is loaded from a private folder that links LibTorch beside it.
        string native = !patch && libTorchFolder == Path.GetDirectoryName(original)
            ? original
            : PrepareNativeFolder(original, libTorchFolder, patch);
        string guard = LoadThroughGuard(native);
        string loading = patch
            ? $"the system {LibStdCxx} lacks {UnusedLibStdCxxVersion}: loaded a copy with that need marked weak"
            : $"the system {LibStdCxx} provides every version TorchSharp needs";
        return new TorchNativeLoad(native, patch, guard, $"{loading}; LibTorch errors become exceptions through {GuardLibrary}");
    }

    /// <summary>
    /// Loads <paramref name="native"/>, then the guard beside DualLora.dll, and resolves TorchSharp's
    /// P/Invokes through the guard's handle: a lookup there finds the guard's wrappers first and every
    /// other entry point in its dependency, which the loader matches (by soname) to the copy just loaded.
    /// </summary>
    static string LoadThroughGuard(string native)
    {
        IntPtr torchSharp = NativeLibrary.Load(native);
        string folder = Path.GetDirectoryName(typeof(TorchRuntime).Assembly.Location) is { Length: > 0 } f ? f : AppContext.BaseDirectory;
        string guardPath = Path.Combine(folder, GuardLibrary);
        if (!File.Exists(guardPath))
            throw new FileNotFoundException(
                $"{guardPath} is missing. It is built with DualLora.dll on Linux from Runtime/Native/torch_guard.cpp " +
                "(g++ is needed) and keeps LibTorch errors from aborting the process; rebuild the library: dotnet build -c Release.", guardPath);
        IntPtr guard = NativeLibrary.Load(guardPath);
        const string unwrapped = "THSTensor_add";
        if (NativeLibrary.GetExport(guard, unwrapped) != NativeLibrary.GetExport(torchSharp, unwrapped))
            throw new InvalidOperationException(
                $"{guardPath} does not forward to {native}: another {TorchSharpNative} was loaded into this process first.");
        guardHandle = guard;
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, ResolveTorchSharp);
        return guardPath;
    }

    static IntPtr guardHandle;

    /// <summary>TorchSharp's resolver: its native library is the guard (IntPtr.Zero: the runtime's usual search).</summary>
    internal static IntPtr ResolveTorchSharp(string name, System.Reflection.Assembly assembly, DllImportSearchPath? searchPath) =>
        name == "LibTorchSharp" ? guardHandle : IntPtr.Zero;

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
    /// A private folder holding a copy of <paramref name="original"/> (with the unused version need marked
    /// weak when <paramref name="patch"/>) and links to every LibTorch library. Keyed by the original's
    /// content, the LibTorch folder and the patch, so a new TorchSharp version or another build output
    /// gets its own folder; safe when several processes prepare it at once (each file appears by an
    /// atomic rename).
    /// </summary>
    static string PrepareNativeFolder(string original, string libTorchFolder, bool patch)
    {
        byte[] identity = [.. File.ReadAllBytes(original), .. System.Text.Encoding.UTF8.GetBytes(libTorchFolder), (byte)(patch ? 1 : 0)];
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

        string copy = Path.Combine(folder, TorchSharpNative);
        bool ready = File.Exists(copy) && (!patch || ElfSymbolVersions.ReadNeededVersions(copy)
            .Any(v => v.File == LibStdCxx && v.Name == UnusedLibStdCxxVersion && v.IsWeak));
        if (!ready)
        {
            string staging = copy + $".{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
            File.Copy(original, staging);
            try
            {
                if (patch) ElfSymbolVersions.MarkNeededVersionWeak(staging, LibStdCxx, UnusedLibStdCxxVersion);
                File.Move(staging, copy, overwrite: true);
            }
            finally
            {
                File.Delete(staging);
            }
        }
        return copy;
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
