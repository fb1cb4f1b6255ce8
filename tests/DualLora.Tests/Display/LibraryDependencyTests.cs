using System.Text.Json;

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
        string depsFile = Path.Combine(AppContext.BaseDirectory, "DualLora.Tests.deps.json");
        using var deps = JsonDocument.Parse(File.ReadAllText(depsFile));
        var target = deps.RootElement.GetProperty("targets").EnumerateObject().First().Value;
        var dependencies = target.EnumerateObject().ToDictionary(
            library => library.Name.Split('/')[0],
            library => library.Value.TryGetProperty("dependencies", out var d) ? d.EnumerateObject().Select(p => p.Name).ToArray() : [],
            StringComparer.OrdinalIgnoreCase);

        var closure = new SortedSet<string>(StringComparer.OrdinalIgnoreCase);
        var pending = new Stack<string>(["DualLora"]);
        while (pending.TryPop(out var name))
            if (closure.Add(name) && dependencies.TryGetValue(name, out var next))
                foreach (string dependency in next) pending.Push(dependency);

        Assert.Contains("TorchSharp-cpu", closure);   // the walk did reach the library's packages
        Assert.DoesNotContain(closure, n => n.StartsWith("FSharp.", StringComparison.OrdinalIgnoreCase) || n.StartsWith("Plotly", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(typeof(DualLora.Display.Figure).Assembly.GetReferencedAssemblies(), a => a.Name!.StartsWith("FSharp", StringComparison.Ordinal));
    }
}
