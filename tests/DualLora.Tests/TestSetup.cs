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

static class Weights
{
    /// <summary>
    /// Overwrites every parameter with N(0, scale²) values from a private generator: tests run in parallel
    /// and the global generator is shared, so seeding it would not make a test's weights reproducible.
    /// </summary>
    public static T Randomize<T>(T module, ulong seed, double scale) where T : TorchSharp.torch.nn.Module
    {
        var generator = new TorchSharp.torch.Generator(seed);
        using var _ = TorchSharp.torch.no_grad();
        foreach (var p in module.parameters()) p.copy_(TorchSharp.torch.randn(p.shape, dtype: p.dtype, generator: generator) * scale);
        return module;
    }
}
