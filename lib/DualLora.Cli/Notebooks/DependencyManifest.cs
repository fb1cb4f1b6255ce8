using System.Collections.Immutable;
using System.Text.Json.Nodes;

namespace DualLora.Cli.Notebooks;

/// <summary>
/// An application's .deps.json, read for one question: which packages, and which of their assemblies,
/// a library's dependency closure holds.
/// </summary>
sealed class DependencyManifest
{
    sealed record Entry(string[] Dependencies, string[] Assemblies);

    readonly string path;
    readonly Dictionary<string, Entry> entries;

    DependencyManifest(string path, Dictionary<string, Entry> entries)
    {
        this.path = path;
        this.entries = entries;
    }

    public static DependencyManifest OfRunningApplication() => Load(
        (AppContext.GetData("APP_CONTEXT_DEPS_FILES") as string)?.Split(';').FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("The application's .deps.json was not found."));

    public static DependencyManifest Load(string path)
    {
        var target = JsonNode.Parse(File.ReadAllText(path))?["targets"]?.AsObject().FirstOrDefault().Value?.AsObject()
            ?? throw new InvalidDataException($"{path}: no 'targets'.");
        var entries = target.ToDictionary(
            library => library.Key[..library.Key.IndexOf('/')],
            library => new Entry(
                library.Value?["dependencies"]?.AsObject().Select(d => d.Key).ToArray() ?? [],
                library.Value?["runtime"]?.AsObject().Select(r => Path.GetFileNameWithoutExtension(r.Key)).ToArray() ?? []),
            StringComparer.OrdinalIgnoreCase);
        return new DependencyManifest(path, entries);
    }

    /// <summary>The roots and every package they depend on, directly or not.</summary>
    public ImmutableHashSet<string> Packages(params string[] roots)
    {
        var closure = ImmutableHashSet.CreateBuilder<string>(StringComparer.OrdinalIgnoreCase);
        var pending = new Stack<string>(roots);
        while (pending.TryPop(out string? name))
        {
            if (!closure.Add(name)) continue;
            if (!entries.TryGetValue(name, out var entry)) throw new InvalidDataException($"{path}: no entry for '{name}'.");
            foreach (string dependency in entry.Dependencies) pending.Push(dependency);
        }
        return closure.ToImmutable();
    }

    /// <summary>The names of the runtime assemblies of <see cref="Packages"/>.</summary>
    public ImmutableHashSet<string> Assemblies(params string[] roots) =>
        Packages(roots).SelectMany(p => entries[p].Assemblies).ToImmutableHashSet(StringComparer.OrdinalIgnoreCase);
}
