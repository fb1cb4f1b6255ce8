using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Scripting;

namespace DualLora.Cli.Notebooks;

/// <summary>
/// Keeps the hosted kernel's view of assemblies what it is in the dotnet-interactive tool. When a cell's
/// code needs an assembly nobody referenced, Roslyn's script resolver looks it up among the process's
/// trusted platform assemblies. In the tool those are the framework and the kernel's own packages; in this
/// CLI they also hold the library's dependencies (TorchSharp, SkiaSharp, ...), so a notebook missing a
/// <c>#r "nuget: ..."</c> line would run here and fail in VS Code. This resolver refuses exactly those.
/// </summary>
sealed class KernelReferences : MetadataReferenceResolver
{
    readonly MetadataReferenceResolver inner;
    readonly ImmutableHashSet<string> refused;

    KernelReferences(MetadataReferenceResolver inner, ImmutableHashSet<string> refused)
    {
        this.inner = inner;
        this.refused = refused;
    }

    /// <summary>The assembly names of the library's package closure that the kernel's closure does not contain.</summary>
    static ImmutableHashSet<string> LibraryOnlyAssemblies()
    {
        var manifest = DependencyManifest.OfRunningApplication();
        return manifest.Assemblies("DualLora")
            .Except(manifest.Assemblies("Microsoft.DotNet.Interactive.CSharp", "Microsoft.DotNet.Interactive.PackageManagement"))
            .Remove("DualLora");
    }

    public override bool ResolveMissingAssemblies => inner.ResolveMissingAssemblies;

    public override PortableExecutableReference? ResolveMissingAssembly(MetadataReference definition, AssemblyIdentity referenceIdentity) =>
        refused.Contains(referenceIdentity.Name) ? null : inner.ResolveMissingAssembly(definition, referenceIdentity);

    public override ImmutableArray<PortableExecutableReference> ResolveReference(string reference, string? baseFilePath, MetadataReferenceProperties properties) =>
        inner.ResolveReference(reference, baseFilePath, properties);

    public override bool Equals(object? other) => other is KernelReferences o && o.inner.Equals(inner) && o.refused.SetEquals(refused);
    public override int GetHashCode() => inner.GetHashCode();

    /// <summary>Script options that resolve from <paramref name="workingDirectory"/> as the kernel does, with the library's packages refused.</summary>
    public static ScriptOptions Apply(ScriptOptions options, string workingDirectory) =>
        options.WithMetadataResolver(new KernelReferences(ScriptMetadataResolver.Default.WithBaseDirectory(workingDirectory), LibraryOnly.Value));

    static readonly Lazy<ImmutableHashSet<string>> LibraryOnly = new(LibraryOnlyAssemblies);
}
