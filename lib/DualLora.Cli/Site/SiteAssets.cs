namespace DualLora.Cli.Site;

/// <summary>
/// The files every page loads: KaTeX (css, js, fonts) and plotly.js from the project's npm folder
/// (<c>site/</c>, installed with <c>npm ci</c>), and the site's own stylesheet and script, which the CLI
/// carries as resources. Nothing comes from a CDN.
/// </summary>
static class SiteAssets
{
    public const string InstallCommand = "npm ci --prefix site";
    const string NpmFolder = "site";

    public const string KatexCss = "assets/katex/katex.min.css";
    public const string KatexJs = "assets/katex/katex.min.js";
    public const string PlotlyJs = "assets/plotly.min.js";
    public const string SiteCss = "assets/site.css";
    public const string SiteJs = "assets/site.js";

    /// <summary>Copies the assets into a site folder; a missing install is an error saying how to install it.</summary>
    public static void CopyInto(string siteFolder)
    {
        string modules = Path.Combine(FindNpmFolder(), "node_modules");
        string katex = Path.Combine(modules, "katex");
        string plotly = Path.Combine(modules, "plotly.js-dist-min");
        string[] required = [Path.Combine(katex, "dist", "katex.min.js"), Path.Combine(katex, "dist", "katex.min.css"), Path.Combine(plotly, "plotly.min.js")];
        if (required.FirstOrDefault(f => !File.Exists(f)) is { } missing)
            throw new FileNotFoundException($"{missing}: the site's browser libraries are not installed; run `{InstallCommand}` at the project root (it needs Node.js and npm).");

        Copy(Path.Combine(katex, "dist", "katex.min.js"), siteFolder, KatexJs);
        Copy(Path.Combine(katex, "dist", "katex.min.css"), siteFolder, KatexCss);
        Copy(Path.Combine(katex, "LICENSE"), siteFolder, "assets/katex/LICENSE");
        foreach (string font in Directory.GetFiles(Path.Combine(katex, "dist", "fonts")))
            Copy(font, siteFolder, $"assets/katex/fonts/{Path.GetFileName(font)}");
        Copy(Path.Combine(plotly, "plotly.min.js"), siteFolder, PlotlyJs);
        Copy(Path.Combine(plotly, "LICENSE"), siteFolder, "assets/plotly.LICENSE");
        WriteResource("site.css", siteFolder, SiteCss);
        WriteResource("site.js", siteFolder, SiteJs);
    }

    /// <summary>The project's npm folder: <c>site/</c> with a package.json, looked for above the current folder and above the CLI.</summary>
    static string FindNpmFolder()
    {
        string[] starts = [Environment.CurrentDirectory, AppContext.BaseDirectory];
        foreach (string start in starts)
            for (var folder = new DirectoryInfo(start); folder is not null; folder = folder.Parent)
            {
                string candidate = Path.Combine(folder.FullName, NpmFolder);
                if (File.Exists(Path.Combine(candidate, "package.json"))) return candidate;
            }
        throw new FileNotFoundException($"{NpmFolder}/package.json was not found above {Environment.CurrentDirectory} or {AppContext.BaseDirectory}: run the command from the project, then `{InstallCommand}` at its root.");
    }

    static void Copy(string source, string siteFolder, string relativePath)
    {
        string target = Path.Combine(siteFolder, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Copy(source, target, overwrite: true);
    }

    static void WriteResource(string name, string siteFolder, string relativePath)
    {
        using var resource = typeof(SiteAssets).Assembly.GetManifestResourceStream($"DualLora.Cli.Site.{name}")
            ?? throw new InvalidOperationException($"the CLI was built without its resource Site/{name}.");
        string target = Path.Combine(siteFolder, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        using var file = File.Create(target);
        resource.CopyTo(file);
    }
}
