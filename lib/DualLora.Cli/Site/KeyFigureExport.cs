using System.Buffers.Binary;
using System.Text.Json.Nodes;

namespace DualLora.Cli.Site;

/// <summary>A chapter's key figure written as a PNG file, with its size in pixels.</summary>
public sealed record ExportedFigure(string Chapter, string Path, int Width, int Height);

/// <summary>
/// The chapters' key figures (see <see cref="Chapter"/>) as PNG files named after their notebooks, for pages
/// that cannot run the site's scripts, such as the README's tour. An image is written as the notebook holds
/// it; a chart's static SVG, the form VS Code shows, is drawn by headless chromium at twice its size.
/// </summary>
public static class KeyFigureExport
{
    const int Scale = 2;

    // Resolves with the document's size in CSS pixels once it has loaded.
    const string SizeScript = """
        (async () => {
          if (document.readyState !== 'complete') await new Promise(resolve => addEventListener('load', resolve, { once: true }));
          const box = document.documentElement.getBoundingClientRect();
          return [Math.ceil(box.width), Math.ceil(box.height)];
        })()
        """;

    public static async Task<IReadOnlyList<ExportedFigure>> ExportAsync(IReadOnlyList<string> notebooks, string folder, TimeSpan timeout)
    {
        var chapters = notebooks.Select(Chapter.Read).ToList();
        string target = Path.GetFullPath(folder);
        Directory.CreateDirectory(target);
        string drafts = Directory.CreateTempSubdirectory("duallora-figures-").FullName;
        var exported = new List<ExportedFigure>();
        HeadlessChromium? browser = null;
        try
        {
            foreach (var chapter in chapters)
            {
                if (chapter.KeyFigure is not { } figure) continue;
                var file = chapter.Files.Single(f => f.RelativePath == figure.RelativePath);
                byte[] png;
                if (file.RelativePath.EndsWith(".png", StringComparison.Ordinal)) png = file.Bytes;
                else
                {
                    browser ??= await HeadlessChromium.StartAsync(TimeSpan.FromSeconds(30));
                    string svg = Path.Combine(drafts, Path.GetFileName(file.RelativePath));
                    await File.WriteAllBytesAsync(svg, file.Bytes);
                    png = await DrawAsync(browser.DevTools, svg, timeout);
                }
                string path = Path.Combine(target, chapter.Name + ".png");
                DualLora.IO.AtomicFile.WriteAllBytes(path, png);
                var (width, height) = PngSize(png, $"{chapter.Name}: {file.RelativePath}");
                exported.Add(new ExportedFigure(chapter.Name, path, width, height));
            }
        }
        finally
        {
            if (browser is not null) await browser.DisposeAsync();
            Directory.Delete(drafts, recursive: true);
        }
        return exported;
    }

    /// <summary>Opens a file in a new tab and takes a screenshot of the whole document at <see cref="Scale"/> pixels per CSS pixel.</summary>
    static async Task<byte[]> DrawAsync(DevToolsConnection devTools, string file, TimeSpan timeout)
    {
        using var cancellation = new CancellationTokenSource(timeout);
        var token = cancellation.Token;
        string targetId = (await devTools.SendAsync("Target.createTarget", new { url = "about:blank" }, cancellation: token))["targetId"]!.GetValue<string>();
        try
        {
            var attached = await devTools.SendAsync("Target.attachToTarget", new { targetId, flatten = true }, cancellation: token);
            string sessionId = attached["sessionId"]!.GetValue<string>();
            await devTools.SendAsync("Emulation.setDeviceMetricsOverride", new { width = 1200, height = 900, deviceScaleFactor = Scale, mobile = false }, sessionId, token);
            var navigation = await devTools.SendAsync("Page.navigate", new { url = new Uri(file).AbsoluteUri }, sessionId, token);
            if (navigation["errorText"]?.GetValue<string>() is { Length: > 0 } navigationError)
                throw new DevToolsException($"{file}: chromium could not open it: {navigationError}");
            var sized = await devTools.SendAsync("Runtime.evaluate", new { expression = SizeScript, awaitPromise = true, returnByValue = true }, sessionId, token);
            if (sized["result"]?["value"] is not JsonArray { Count: 2 } size)
                throw new DevToolsException($"{file}: chromium gave no size for it: {sized.ToJsonString()}");
            var shot = await devTools.SendAsync("Page.captureScreenshot", new
            {
                format = "png",
                captureBeyondViewport = true,
                clip = new { x = 0, y = 0, width = size[0]!.GetValue<double>(), height = size[1]!.GetValue<double>(), scale = 1 },
            }, sessionId, token);
            return Convert.FromBase64String(shot["data"]!.GetValue<string>());
        }
        finally
        {
            using var closing = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await devTools.SendAsync("Target.closeTarget", new { targetId }, cancellation: closing.Token);
        }
    }

    /// <summary>A PNG's width and height from its IHDR chunk; an error naming the figure if it is not a PNG.</summary>
    public static (int Width, int Height) PngSize(byte[] png, string figure)
    {
        ReadOnlySpan<byte> signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        if (png.Length < 24 || !png.AsSpan(0, 8).SequenceEqual(signature) || !png.AsSpan(12, 4).SequenceEqual("IHDR"u8))
            throw new InvalidDataException($"{figure}: not a PNG image (no PNG signature and IHDR chunk).");
        return (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16, 4)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20, 4)));
    }
}
