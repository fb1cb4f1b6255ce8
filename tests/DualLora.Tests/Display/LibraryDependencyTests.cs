using DualLora.Cli.Notebooks;

namespace DualLora.Tests.Display;

public class LibraryDependencyTests
{
    /// <summary>
    /// The notebook kernel already carries an FSharp.Core of its own; a library that needs another one
    /// fails to load its charts there ("Could not load file or assembly 'FSharp.Core, Version=...'").
    /// So nothing the library needs at run time may bring FSharp.Core (Plotly.NET did).
    /// </summary>
    [Fact]
    public void The_library_needs_no_FSharp_runtime()
    {
        var closure = DependencyManifest.Load(Path.Combine(AppContext.BaseDirectory, "DualLora.Tests.deps.json")).Packages("DualLora");

        Assert.Contains("TorchSharp-cpu", closure);   // the walk did reach the library's packages
        Assert.DoesNotContain(closure, n => n.StartsWith("FSharp.", StringComparison.OrdinalIgnoreCase) || n.StartsWith("Plotly", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(typeof(DualLora.Display.Figure).Assembly.GetReferencedAssemblies(), a => a.Name!.StartsWith("FSharp", StringComparison.Ordinal));
    }
}
