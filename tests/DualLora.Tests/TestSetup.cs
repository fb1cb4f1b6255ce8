using System.Runtime.CompilerServices;
using DualLora.Runtime;

namespace DualLora.Tests;

static class TestSetup
{
    // TorchSharp's native library must be made loadable before any test touches torch.
    [ModuleInitializer]
    internal static void LoadTorch() => TorchRuntime.EnsureLoaded();
}

/// <summary>Tests that read or set process-wide state (environment variables, the current folder) run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessStateCollection
{
    public const string Name = "process state";
}

/// <summary>A fresh folder under the system temp folder, removed when disposed.</summary>
sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("duallora-test-").FullName;
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() => Directory.Delete(Path, recursive: true);
}

static class TensorAssert
{
    /// <summary>Same dtype, same shape and the same bytes: bit-exact equality.</summary>
    public static void BitEqual(TorchSharp.torch.Tensor expected, TorchSharp.torch.Tensor actual, string? name = null)
    {
        Assert.True(expected.dtype == actual.dtype, $"{name}: dtype {actual.dtype}, expected {expected.dtype}");
        Assert.True(expected.shape.SequenceEqual(actual.shape), $"{name}: shape [{string.Join(", ", actual.shape)}], expected [{string.Join(", ", expected.shape)}]");
        using var e = expected.contiguous();
        using var a = actual.contiguous();
        Assert.True(e.bytes.SequenceEqual(a.bytes), $"{name}: the bytes differ");
    }
}
