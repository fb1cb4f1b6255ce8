using DualLora.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void A_real_tensor_operation_and_backward_pass_run()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 1, 2, 3 }, requires_grad: true);
        var y = (x * x * x).sum();
        y.backward();
        Assert.Equal(36f, y.item<float>());
        Assert.Equal(new float[] { 3, 12, 27 }, x.grad!.data<float>().ToArray()); // d/dx x^3 = 3x^2
        Assert.NotNull(TorchRuntime.Loaded);
    }

    static string CopyOfTorchSharpNative(TempFolder temp)
    {
        string original = TorchRuntime.FindTorchSharpNative() ?? throw new InvalidOperationException("libLibTorchSharp.so not found");
        string copy = temp.File("libLibTorchSharp.so");
        File.Copy(original, copy);
        return copy;
    }

    [Fact]
    public void Marking_the_version_weak_sets_only_that_flag_and_is_idempotent()
    {
        using var temp = new TempFolder();
        string copy = CopyOfTorchSharpNative(temp);
        byte[] before = File.ReadAllBytes(copy);
        var entry = ElfSymbolVersions.ReadNeededVersions(copy).Single(v => v.Name == TorchRuntime.UnusedLibStdCxxVersion);
        Assert.Equal("libstdc++.so.6", entry.File);
        Assert.False(entry.IsWeak);

        Assert.Equal(WeakMarkResult.Marked, ElfSymbolVersions.MarkNeededVersionWeak(copy, "libstdc++.so.6", TorchRuntime.UnusedLibStdCxxVersion));
        byte[] after = File.ReadAllBytes(copy);
        Assert.Equal(before.Length, after.Length);
        var changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        Assert.Equal([(int)entry.FlagsOffset], changed);                     // one byte of vna_flags, nothing else
        Assert.Equal(before[entry.FlagsOffset] | 0x2, after[entry.FlagsOffset]);
        Assert.True(ElfSymbolVersions.ReadNeededVersions(copy).Single(v => v.Name == TorchRuntime.UnusedLibStdCxxVersion).IsWeak);
        Assert.DoesNotContain(TorchRuntime.UnusedLibStdCxxVersion, TorchRuntime.MissingLibStdCxxVersions(copy));

        Assert.Equal(WeakMarkResult.AlreadyWeak, ElfSymbolVersions.MarkNeededVersionWeak(copy, "libstdc++.so.6", TorchRuntime.UnusedLibStdCxxVersion));
        Assert.Equal(after, File.ReadAllBytes(copy));
    }

    [Fact]
    public void Other_needed_versions_keep_their_flags()
    {
        using var temp = new TempFolder();
        string copy = CopyOfTorchSharpNative(temp);
        var before = ElfSymbolVersions.ReadNeededVersions(copy);
        ElfSymbolVersions.MarkNeededVersionWeak(copy, "libstdc++.so.6", TorchRuntime.UnusedLibStdCxxVersion);
        var after = ElfSymbolVersions.ReadNeededVersions(copy);
        Assert.Equal(before.Count, after.Count);
        Assert.True(before.Count > 20);
        foreach (var (b, a) in before.Zip(after).Where(p => p.First.Name != TorchRuntime.UnusedLibStdCxxVersion))
            Assert.Equal(b, a);
    }

    [Fact]
    public void A_file_that_is_not_ELF_gets_a_clear_error()
    {
        using var temp = new TempFolder();
        string notElf = temp.File("notes.so");
        File.WriteAllText(notElf, "this is text, long enough to hold an ELF header if it were one, which it is not at all.");
        var error = Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.MarkNeededVersionWeak(notElf, "libstdc++.so.6", "GLIBCXX_3.4.32"));
        Assert.Contains(notElf, error.Message);
        Assert.Contains("not an ELF file", error.Message);
        Assert.Equal("this is text, long enough to hold an ELF header if it were one, which it is not at all.", File.ReadAllText(notElf));
    }

    [Fact]
    public void A_library_lacking_the_entry_gets_a_clear_error_and_is_left_unchanged()
    {
        using var temp = new TempFolder();
        string copy = CopyOfTorchSharpNative(temp);
        byte[] before = File.ReadAllBytes(copy);
        var error = Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.MarkNeededVersionWeak(copy, "libstdc++.so.6", "GLIBCXX_9.9.99"));
        Assert.Contains(copy, error.Message);
        Assert.Contains("GLIBCXX_9.9.99", error.Message);
        Assert.Equal(before, File.ReadAllBytes(copy));
    }

    [Fact]
    public void The_system_libstdcxx_is_found_and_defines_its_base_version()
    {
        string? system = TorchRuntime.SystemLibStdCxx();
        Assert.NotNull(system);
        Assert.Contains("GLIBCXX_3.4", ElfSymbolVersions.ReadDefinedVersions(system!));
    }
}

public class NativeLibraryLocationTests
{
    [Fact]
    public void In_a_package_cache_layout_the_native_library_and_LibTorch_are_found_as_a_notebook_loads_them()
    {
        // <packages>/torchsharp/0.107.0/lib/net8.0/TorchSharp.dll and its natives, as #r "nuget: TorchSharp-cpu" leaves them.
        using var temp = new TempFolder();
        string assemblyFolder = Directory.CreateDirectory(Path.Combine(temp.Path, "torchsharp", "0.107.0", "lib", "net8.0")).FullName;
        string natives = Directory.CreateDirectory(Path.Combine(temp.Path, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native")).FullName;
        File.WriteAllText(Path.Combine(natives, "libLibTorchSharp.so"), "");
        foreach (string version in new[] { "2.9.1", "2.10.0" })
        {
            string libTorch = Directory.CreateDirectory(Path.Combine(temp.Path, "libtorch-cpu-linux-x64", version, "runtimes", "linux-x64", "native")).FullName;
            File.WriteAllText(Path.Combine(libTorch, "libtorch_cpu.so"), "");
        }
        string appFolder = Directory.CreateDirectory(Path.Combine(temp.Path, "kernel")).FullName;

        string? found = TorchRuntime.FindTorchSharpNative(appFolder, assemblyFolder);
        Assert.Equal(Path.Combine(natives, "libLibTorchSharp.so"), found);
        Assert.Equal(Path.Combine(temp.Path, "libtorch-cpu-linux-x64", "2.10.0", "runtimes", "linux-x64", "native"), TorchRuntime.FindLibTorchFolder(found!));
    }

    [Fact]
    public void In_a_build_output_the_libraries_beside_the_app_are_used()
    {
        using var temp = new TempFolder();
        string natives = Directory.CreateDirectory(Path.Combine(temp.Path, "runtimes", "linux-x64", "native")).FullName;
        File.WriteAllText(Path.Combine(natives, "libLibTorchSharp.so"), "");
        File.WriteAllText(Path.Combine(natives, "libtorch_cpu.so"), "");
        string? found = TorchRuntime.FindTorchSharpNative(temp.Path, null);
        Assert.Equal(Path.Combine(natives, "libLibTorchSharp.so"), found);
        Assert.Equal(natives, TorchRuntime.FindLibTorchFolder(found!));
    }
}
