using System.Diagnostics;
using System.Runtime.InteropServices;
using DualLora.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using RuntimeEnvironment = DualLora.Runtime.RuntimeEnvironment;

namespace DualLora.Tests.Runtime;

/// <summary>
/// LibTorch's C++ errors arrive as .NET exceptions carrying LibTorch's message, and the process goes on.
/// Without the guard each faulty call below aborts the test host (exit 134), which fails the run.
/// </summary>
public class TorchErrorGuardTests
{
    static ExternalException Fails(Action faulty)
    {
        using var scope = NewDisposeScope();
        return Assert.Throws<ExternalException>(faulty);
    }

    static void StillComputes()
    {
        using var scope = NewDisposeScope();
        var product = ones(2, 3).matmul(ones(3, 2));
        Assert.Equal(new float[] { 3, 3, 3, 3 }, product.data<float>().ToArray());
    }

    [Fact]
    public void A_shape_mismatch_in_matmul_is_an_exception_with_LibTorchs_message()
    {
        var error = Fails(() => randn(4, 4).matmul(randn(3, 3)));
        Assert.Contains("mat1 and mat2 shapes cannot be multiplied (4x4 and 3x3)", error.Message);
        StillComputes();
    }

    [Fact]
    public void A_dtype_mismatch_in_matmul_is_an_exception_with_LibTorchs_message()
    {
        var error = Fails(() => randn(4, 4).matmul(ones(4, 4, dtype: int64)));
        Assert.Contains("expected m1 and m2 to have the same dtype", error.Message);
        StillComputes();
    }

    [Fact]
    public void Indices_out_of_range_are_exceptions_with_LibTorchs_message()
    {
        Assert.Contains("index out of range", Fails(() => randn(4, 4).index_select(0, tensor(new long[] { 7 }))).Message);
        Assert.Contains("index 7 out of range for tensor of size [4, 4]", Fails(() => _ = randn(4, 4)[7]).Message);
        Assert.Contains("slice step cannot be zero", Fails(() => _ = randn(4, 4)[TensorIndex.Slice(0, 4, 0)]).Message);
        Assert.Contains("slice step cannot be zero", Fails(() => zeros(4)[TensorIndex.Slice(0, 4, 0)] = ones(4)).Message);
        StillComputes();
    }

    [Fact]
    public void The_other_guarded_entry_points_throw_too()
    {
        Assert.Contains("only support floating point and complex dtypes", Fails(() => arange(10).var(0)).Message);
        Assert.Contains("Dimension out of range", Fails(() => randn(4).cummax(3)).Message);
        Assert.Contains("Dimension out of range", Fails(() => randn(4).cummin(3)).Message);
        Assert.Contains("does not require grad", Fails(() => autograd.grad([randn(3).sum()], [randn(3)])).Message);
        Assert.Contains("Expected positive number of threads", Fails(() => set_num_threads(0)).Message);
        Assert.Contains("RNG state size", Fails(() => new Generator(7).set_state(zeros(3, dtype: uint8))).Message);
        StillComputes();
    }

    /// <summary>What the guard exports in place of libLibTorchSharp.so's own entry points (Runtime/Native/torch_guard.cpp).</summary>
    static readonly string[] Wrapped =
    [
        "THSTorch_get_and_reset_last_err", "THSTensor_matmul", "THSTensor_index", "THSTensor_index_put_",
        "THSTensor_index_put_scalar_", "THSTensor_var_along_dimensions", "THSTensor_cummax", "THSTensor_cummin",
        "THSAutograd_grad", "THSTorch_set_num_threads", "THSTorch_set_num_interop_threads", "THSGenerator_set_rng_state",
    ];

    [Fact]
    public void TorchSharps_calls_resolve_to_the_guards_wrappers_and_to_the_loaded_library_for_the_rest()
    {
        if (!OperatingSystem.IsLinux()) return;
        var load = TorchRuntime.Loaded!;
        Assert.NotNull(load.Guard);
        // What TorchSharp's P/Invokes of "LibTorchSharp" resolve to.
        IntPtr resolved = TorchRuntime.ResolveTorchSharp("LibTorchSharp", typeof(torch).Assembly, null);
        IntPtr guard = NativeLibrary.Load(load.Guard!);
        IntPtr native = NativeLibrary.Load(load.NativeLibrary!);
        foreach (string name in Wrapped)
        {
            Assert.Equal(NativeLibrary.GetExport(guard, name), NativeLibrary.GetExport(resolved, name));
            Assert.NotEqual(NativeLibrary.GetExport(native, name), NativeLibrary.GetExport(resolved, name));
        }
        foreach (string name in new[] { "THSTensor_add", "THSTensor_mm", "THSTensor_index_select" })
            Assert.Equal(NativeLibrary.GetExport(native, name), NativeLibrary.GetExport(resolved, name));
    }

    [Fact]
    public async Task Where_the_system_needs_no_loader_fix_the_library_loads_in_place_behind_the_guard_and_a_cell_mistake_is_that_cells_error()
    {
        if (!OperatingSystem.IsLinux()) return;
        // Simulated: a copy of this test's output folder whose libLibTorchSharp.so needs nothing this system
        // lacks (the copy with the version need already weak), so the CLI in it takes the path of such systems.
        using var temp = new TempFolder();
        string app = AppContext.BaseDirectory;
        string native = Path.Combine("runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(Path.Combine(app, native)));
        // The host resolves the app's path through links, and the guard is looked up beside DualLora.dll: real copies.
        MirrorWithLinks(app, temp.Path, ["DualLora.Cli.dll", "DualLora.dll", native]);
        File.Copy(TorchRuntime.Loaded!.NativeLibrary!, Path.Combine(temp.Path, native), overwrite: true);
        Assert.Empty(TorchRuntime.MissingLibStdCxxVersions(Path.Combine(temp.Path, native)));

        string root = Path.GetDirectoryName(RuntimeEnvironment.Find(app).SourceFile)!;
        var (exit, output) = await RunCli(temp.Path, root, "env");
        Assert.True(exit == 0, $"exit {exit}: {output}");
        Assert.Contains("provides every version TorchSharp needs; LibTorch errors become exceptions through libduallora_torch_guard.so", output);

        // A LibTorch mistake in a notebook cell, in the same layout: that cell's error, not an abort (exit 134).
        string notebook = Path.Combine(temp.Path, "mistake.ipynb");
        File.WriteAllText(notebook, $$$"""
            {"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": ".net-csharp", "display_name": ".NET (C#)", "language": "C#"}},
             "cells": [
              {"cell_type": "code", "metadata": {}, "outputs": [], "source": "#r \"nuget: TorchSharp-cpu, 0.107.0\"\n#r \"{{{typeof(TorchRuntime).Assembly.Location}}}\""},
              {"cell_type": "code", "metadata": {}, "outputs": [], "source": "DualLora.Runtime.TorchRuntime.EnsureLoaded();\nTorchSharp.torch.randn(4, 4).matmul(TorchSharp.torch.randn(3, 3));"}]}
            """);
        (exit, output) = await RunCli(temp.Path, root, "notebooks", "run", notebook, "--output", Path.Combine(temp.Path, "out"));
        Assert.True(exit == 1, $"exit {exit}: {output}");
        Assert.Contains("mistake.ipynb: cell 2, line 2", output);
        Assert.Contains("mat1 and mat2 shapes cannot be multiplied", output);
    }

    /// <summary>Runs the CLI of <paramref name="appFolder"/> in a child process; its exit code and all it printed.</summary>
    static async Task<(int Exit, string Output)> RunCli(string appFolder, string workingDirectory, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(appFolder, "DualLora.Cli.dll"), .. args])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEndAsync();
        var errors = child.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await child.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            throw;
        }
        return (child.ExitCode, await errors + await output);
    }

    /// <summary>Recreates <paramref name="source"/> in <paramref name="target"/> as symbolic links, except the listed files (copied) and the folders holding them.</summary>
    static void MirrorWithLinks(string source, string target, IReadOnlyCollection<string> copies, string relative = "")
    {
        Directory.CreateDirectory(Path.Combine(target, relative));
        foreach (string entry in Directory.EnumerateFileSystemEntries(Path.Combine(source, relative)))
        {
            string path = Path.Combine(relative, Path.GetFileName(entry));
            if (copies.Contains(path)) File.Copy(entry, Path.Combine(target, path));
            else if (copies.Any(c => c.StartsWith(path + Path.DirectorySeparatorChar, StringComparison.Ordinal))) MirrorWithLinks(source, target, copies, path);
            else if (Directory.Exists(entry)) Directory.CreateSymbolicLink(Path.Combine(target, path), entry);
            else File.CreateSymbolicLink(Path.Combine(target, path), entry);
        }
    }
}
