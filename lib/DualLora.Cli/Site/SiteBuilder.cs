using System.Text;

namespace DualLora.Cli.Site;

/// <summary>
/// The documentation site of executed notebooks: <c>index.html</c> (every chapter with its question and
/// key figure), one page per notebook with previous/next links, figures under <c>figures/</c>, and
/// KaTeX, plotly.js and the site's stylesheet and script under <c>assets/</c>.
/// </summary>
public static class SiteBuilder
{
    const string Marker = "assets/site.js";

    /// <summary>
    /// Builds the site from executed notebooks, as chapters in the given order. The site is written next
    /// to its folder and moved into place when complete, so a failed build leaves the old site as it was.
    /// </summary>
    public static void Build(IReadOnlyList<string> executedNotebooks, string siteFolder)
    {
        if (executedNotebooks.Count == 0) throw new ArgumentException("no notebooks to build a site from.", nameof(executedNotebooks));
        string target = Path.GetFullPath(siteFolder);
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any() && !File.Exists(Path.Combine(target, Marker)))
            throw new IOException($"{target}: the folder exists and is not a site this builder wrote; it would be replaced, so choose another folder.");

        string staging = $"{target}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            SiteAssets.CopyInto(staging);
            var chapters = executedNotebooks.Select(Chapter.Read).ToList();
            if (chapters.GroupBy(c => c.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new InvalidDataException($"two notebooks are named {twice.Key}: {string.Join(", ", executedNotebooks.Where(n => Path.GetFileNameWithoutExtension(n) == twice.Key))}; each page needs its own name.");

            Write(staging, SitePages.IndexPage, SitePages.Index(chapters));
            var index = new SitePages.Neighbour(SitePages.IndexPage, "index", SitePages.SiteTitle);
            for (int i = 0; i < chapters.Count; i++)
            {
                var previous = i > 0 ? new SitePages.Neighbour(chapters[i - 1].Page, "previous", chapters[i - 1].TitleHtml) : index;
                var next = i + 1 < chapters.Count ? new SitePages.Neighbour(chapters[i + 1].Page, "next", chapters[i + 1].TitleHtml) : index;
                Write(staging, chapters[i].Page, SitePages.ChapterPage(chapters[i], previous, next));
                foreach (var file in chapters[i].Files) Write(staging, file.RelativePath, file.Bytes);
            }
            Replace(target, staging);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    static void Write(string siteFolder, string relativePath, string text) => Write(siteFolder, relativePath, new UTF8Encoding(false).GetBytes(text));

    static void Write(string siteFolder, string relativePath, byte[] bytes)
    {
        string path = Path.Combine(siteFolder, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
    }

    static void Replace(string target, string staging)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        if (!Directory.Exists(target))
        {
            Directory.Move(staging, target);
            return;
        }
        string old = $"{target}.{Environment.ProcessId}.{Guid.NewGuid():N}.old";
        Directory.Move(target, old);
        Directory.Move(staging, target);
        Directory.Delete(old, recursive: true);
    }
}
