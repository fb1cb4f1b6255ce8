using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using DualLora.Runtime;

namespace DualLora.Tests.Notebooks;

/// <summary>
/// The real notebook kernel loads a package only from its notebook's <c>#r "nuget: ..."</c> line, also when the library
/// loads it deep inside a call (the fine-tuning pipeline loads Microsoft.ML.Tokenizers); the in-process runner cannot see
/// that, since the command line itself carries every package. So every notebook's first cell references every package the
/// library depends on, at the version the solution pins.
/// </summary>
public class NotebookReferencesTests
{
    static readonly string Root = Path.GetDirectoryName(RuntimeEnvironment.Find(AppContext.BaseDirectory).SourceFile)!;

    // The kernel brings its own formatting package; every other reference of the library must come from the notebook.
    static readonly string[] KernelProvided = ["Microsoft.DotNet.Interactive.Formatting"];

    public static TheoryData<string> Notebooks() => new(Directory.GetFiles(Path.Combine(Root, "notebooks"), "*.ipynb").Select(Path.GetFileName).Order()!);

    [Theory]
    [MemberData(nameof(Notebooks))]
    public void The_first_cell_references_every_package_the_library_loads(string notebook)
    {
        var versions = XDocument.Load(Path.Combine(Root, "Directory.Packages.props")).Descendants("PackageVersion")
            .ToDictionary(p => (string)p.Attribute("Include")!, p => (string)p.Attribute("Version")!);
        var needed = XDocument.Load(Path.Combine(Root, "lib", "DualLora", "DualLora.csproj")).Descendants("PackageReference")
            .Select(p => (string)p.Attribute("Include")!).Except(KernelProvided).Select(name => $"{name}, {versions[name]}").ToList();
        Assert.NotEmpty(needed);

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, "notebooks", notebook)));
        var firstCode = json.RootElement.GetProperty("cells").EnumerateArray().First(c => c.GetProperty("cell_type").GetString() == "code");
        string source = string.Concat(firstCode.GetProperty("source").EnumerateArray().Select(line => line.GetString()));
        var referenced = Regex.Matches(source, "#r \"nuget: ([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.True(needed.All(referenced.Contains), $"{notebook}: the first cell lacks {string.Join(", ", needed.Except(referenced).Select(p => $"#r \"nuget: {p}\""))}");
    }
}
