using DualLora.Cli.Site;
using DualLora.Runtime;

namespace DualLora.Cli;

/// <summary>The <c>site</c> commands: build the documentation site from the committed notebooks, and check a site in a browser.</summary>
static class SiteCommands
{
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        try
        {
            return args switch
            {
                ["build", .. var rest] => Build(Options.Parse(rest, ["--out"], []), output),
                ["check", .. var rest] => Check(Options.Parse(rest, ["--screenshots"], []), output, error),
                ["figures", .. var rest] => Figures(Options.Parse(rest, ["--out"], []), output, error),
                _ => throw new UsageException($"unknown site command '{string.Join(" ", args)}'; use site build, site check or site figures."),
            };
        }
        catch (IOException e)
        {
            // A missing install, site folder or notebook, or an output folder that is not a site.
            error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    static int Build(Options options, TextWriter output)
    {
        if (options.Positional.Count > 0) throw new UsageException($"site build takes no file arguments (got '{options.Positional[0]}').");
        var (root, files) = Notebooks();
        string site = Path.GetFullPath(options.Value("--out") ?? Path.Combine(root, "out", "site"));
        SiteBuilder.Build(files, site);
        output.WriteLine($"site: {files.Count} chapters and index.html in {site}");
        return 0;
    }

    /// <summary>The project root and its notebooks, in order.</summary>
    static (string Root, List<string> Notebooks) Notebooks()
    {
        string root = Path.GetDirectoryName(RuntimeEnvironment.Find().SourceFile)!;
        string notebooks = Path.Combine(root, "notebooks");
        var files = Directory.GetFiles(notebooks, "*.ipynb").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new FileNotFoundException($"{notebooks}: no notebooks to build a site from.");
        return (root, files);
    }

    static int Figures(Options options, TextWriter output, TextWriter error)
    {
        if (options.Positional.Count > 0) throw new UsageException($"site figures takes no file arguments (got '{options.Positional[0]}').");
        var (root, files) = Notebooks();
        string folder = Path.GetFullPath(options.Value("--out") ?? Path.Combine(root, "docs", "figures"));
        IReadOnlyList<ExportedFigure> figures;
        try
        {
            figures = KeyFigureExport.ExportAsync(files, folder, SiteChecker.DefaultPageTimeout).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is DevToolsException or TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            error.WriteLine($"error: the browser could not draw the figures: {e.Message}");
            return 1;
        }
        foreach (var figure in figures) output.WriteLine($"{figure.Chapter}: {Path.GetRelativePath(root, figure.Path)} ({figure.Width} x {figure.Height})");
        output.WriteLine($"site figures: {figures.Count} of {files.Count} notebooks have a key figure; written to {folder}");
        return 0;
    }

    static int Check(Options options, TextWriter output, TextWriter error)
    {
        if (options.Positional is not [var folder]) throw new UsageException("site check needs the site folder, e.g. site check out/site.");
        string site = Path.GetFullPath(folder);
        string screenshots = Path.GetFullPath(options.Value("--screenshots") ?? site.TrimEnd(Path.DirectorySeparatorChar) + "-screenshots");
        SiteCheckResult result;
        try
        {
            result = SiteChecker.CheckAsync(site, screenshots, output).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is DevToolsException or TimeoutException or InvalidOperationException)
        {
            error.WriteLine($"error: the browser check could not run: {e.Message}");
            return 1;
        }
        foreach (var fault in result.Faults) error.WriteLine($"error: {fault}");
        output.WriteLine($"site check: {result.Pages.Count} pages, {result.Faults.Count} faults, {result.Elapsed.TotalSeconds:F1} s; screenshots in {screenshots}");
        return result.Faults.Count == 0 ? 0 : 1;
    }
}
