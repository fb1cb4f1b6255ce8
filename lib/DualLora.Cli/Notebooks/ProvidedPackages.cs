using System.Text.Json;
using Microsoft.CodeAnalysis;

namespace DualLora.Cli.Notebooks;

/// <summary>
/// The NuGet packages a notebook may reference with <c>#r "nuget: NAME, VERSION"</c>: the packages the
/// DualLora library depends on, at the versions the project pins (Directory.Packages.props), read from
/// the running application's .deps.json. A reference resolves to the assemblies of that package and its
/// dependencies, which this process already carries, so nothing is downloaded while a notebook runs.
/// </summary>
public sealed class ProvidedPackages
{
    sealed record Library(string Name, string Version, string[] Dependencies, string[] Assemblies);

    const string LibraryProject = "DualLora";
    readonly Dictionary<string, Library> libraries;
    readonly string baseFolder;

    public IReadOnlyDictionary<string, string> Packages { get; }

    ProvidedPackages(Dictionary<string, Library> libraries, IReadOnlyDictionary<string, string> packages, string baseFolder)
    {
        this.libraries = libraries; Packages = packages; this.baseFolder = baseFolder;
    }

    public static ProvidedPackages FromRunningApplication()
    {
        string depsFile = (AppContext.GetData("APP_CONTEXT_DEPS_FILES") as string)?.Split(';').FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("The application's .deps.json was not found; the notebook runner needs it to resolve #r \"nuget: ...\".");
        return Load(depsFile, AppContext.BaseDirectory);
    }

    public static ProvidedPackages Load(string depsFile, string baseFolder)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(depsFile));
        var targets = document.RootElement.GetProperty("targets");
        var target = targets.EnumerateObject().First().Value;
        var libraries = new Dictionary<string, Library>(StringComparer.OrdinalIgnoreCase);
        foreach (var entry in target.EnumerateObject())
        {
            string[] nameVersion = entry.Name.Split('/');
            string[] dependencies = entry.Value.TryGetProperty("dependencies", out var d) ? d.EnumerateObject().Select(p => p.Name).ToArray() : [];
            string[] assemblies = entry.Value.TryGetProperty("runtime", out var r) ? r.EnumerateObject().Select(p => Path.GetFileName(p.Name)).ToArray() : [];
            libraries[nameVersion[0]] = new Library(nameVersion[0], nameVersion[1], dependencies, assemblies);
        }
        if (!libraries.TryGetValue(LibraryProject, out var project))
            throw new InvalidOperationException($"{depsFile}: the {LibraryProject} library is not part of this application.");
        var packages = project.Dependencies
            .Where(libraries.ContainsKey)
            .ToDictionary(n => libraries[n].Name, n => libraries[n].Version, StringComparer.OrdinalIgnoreCase);
        return new ProvidedPackages(libraries, packages, baseFolder);
    }

    /// <summary>
    /// The assemblies a <c>#r "nuget: ..."</c> of <paramref name="name"/> at <paramref name="version"/> brings,
    /// or an error that says what the project provides.
    /// </summary>
    public IReadOnlyList<MetadataReference> Resolve(string name, string? version, Func<string, Exception> error)
    {
        if (!Packages.TryGetValue(name, out string? provided))
            throw error($"the project provides no package '{name}'; it provides {Describe()}.");
        if (version == null)
            throw error($"'{name}' has no version; pin the project's version: #r \"nuget: {name}, {provided}\".");
        if (!string.Equals(version, provided, StringComparison.OrdinalIgnoreCase))
            throw error($"'{name}' version {version} is asked for, but the project provides {provided}.");

        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var references = new List<MetadataReference>();
        void Visit(string library)
        {
            if (!seen.Add(library) || !libraries.TryGetValue(library, out var entry)) return;
            foreach (string assembly in entry.Assemblies)
            {
                string path = Path.Combine(baseFolder, assembly);
                if (File.Exists(path)) references.Add(MetadataReference.CreateFromFile(path));
            }
            foreach (string dependency in entry.Dependencies) Visit(dependency);
        }
        Visit(name);
        return references;
    }

    public string Describe() => string.Join(", ", Packages.OrderBy(p => p.Key, StringComparer.OrdinalIgnoreCase).Select(p => $"{p.Key} {p.Value}"));
}
