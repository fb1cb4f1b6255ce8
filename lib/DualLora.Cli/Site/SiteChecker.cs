using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace DualLora.Cli.Site;

/// <summary>A fault the browser check found, with the page (relative to the site folder) it is on.</summary>
public sealed record SiteFault(string Page, string Fault)
{
    public override string ToString() => $"{Page}: {Fault}";
}

/// <summary>The pages checked (relative to the site folder), the faults found, and how long the check took.</summary>
public sealed record SiteCheckResult(IReadOnlyList<string> Pages, IReadOnlyList<SiteFault> Faults, TimeSpan Elapsed);

/// <summary>
/// Opens every page of a site in headless chromium (from the file system), waits for it to settle, and
/// reports: console errors and uncaught exceptions (failed loads of scripts, styles and images among
/// them), equations KaTeX could not render, charts that plotly.js did not draw, images that did not load,
/// and links to files or anchors that do not exist. Saves a full-page screenshot of each page.
/// </summary>
public static partial class SiteChecker
{
    public static readonly TimeSpan DefaultPageTimeout = TimeSpan.FromSeconds(30);
    const int ViewportWidth = 1200, ViewportHeight = 900;

    // Resolves when the page is complete: web fonts loaded, the site script done (KaTeX and charts),
    // timers set at load (charts that wait for plotly.js) fired, and two frames painted.
    const string SettleScript = """
        (async () => {
          await document.fonts.ready;
          if (window.siteReady) await window.siteReady;
          await new Promise(resolve => setTimeout(resolve, 200));
          await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
        })()
        """;

    const string InspectScript = """
        (() => {
          const text = element => (element?.textContent ?? '').replace(/\s+/g, ' ').trim().slice(0, 100);
          return {
            equations: [...document.querySelectorAll('.katex-error')].map(e => ({ tex: text(e), error: e.title })),
            charts: [...document.querySelectorAll('figure.duallora-chart')].map((figure, index) => ({
              number: index + 1, caption: text(figure.querySelector('figcaption')), drawn: figure.querySelector('svg.main-svg') !== null })),
            images: [...document.images].filter(image => !image.complete || image.naturalWidth === 0)
              .map(image => (image.getAttribute('src') ?? '').slice(0, 100)),
            links: [...document.querySelectorAll('a[href]')].map(a => ({ href: a.getAttribute('href'), url: a.href })),
            ids: [...document.querySelectorAll('[id]')].map(e => e.id)
              .concat([...document.querySelectorAll('a[name]')].map(a => a.name)),
          };
        })()
        """;

    public static async Task<SiteCheckResult> CheckAsync(string siteFolder, string screenshotFolder, TextWriter log, TimeSpan? pageTimeout = null)
    {
        var clock = Stopwatch.StartNew();
        string root = Path.GetFullPath(siteFolder);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{root}: no such site folder.");
        var pages = Directory.GetFiles(root, "*.html", SearchOption.AllDirectories)
            .Where(p => !Relative(root, p).StartsWith("assets/", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
        if (pages.Count == 0) throw new FileNotFoundException($"{root}: no HTML pages to check.");
        Directory.CreateDirectory(screenshotFolder);

        var faults = new List<SiteFault>();
        var idsByPage = new Dictionary<string, HashSet<string>>();
        var links = new List<(string Page, string Href, Uri Target)>();
        await using (var browser = await HeadlessChromium.StartAsync(TimeSpan.FromSeconds(30)))
        {
            foreach (string page in pages)
            {
                var pageClock = Stopwatch.StartNew();
                string name = Relative(root, page);
                string screenshot = Path.Combine(screenshotFolder, Path.ChangeExtension(name.Replace('/', '_'), ".png"));
                var (pageFaults, inspection) = await CheckPageAsync(browser.DevTools, page, screenshot, pageTimeout ?? DefaultPageTimeout);
                faults.AddRange(pageFaults.Select(f => new SiteFault(name, f)));
                if (inspection is not null)
                {
                    idsByPage[page] = inspection["ids"]!.AsArray().Select(i => i!.GetValue<string>()).ToHashSet();
                    foreach (var link in inspection["links"]!.AsArray())
                        if (Uri.TryCreate(link!["url"]!.GetValue<string>(), UriKind.Absolute, out var url))
                            links.Add((name, link["href"]!.GetValue<string>(), url));
                }
                log.WriteLine($"{(pageFaults.Count == 0 ? "ok  " : "FAIL")} {name} ({pageClock.Elapsed.TotalSeconds:F1} s){(pageFaults.Count == 0 ? "" : $": {pageFaults.Count} faults")}");
            }
        }
        faults.AddRange(BrokenLinks(links, idsByPage));
        return new SiteCheckResult(pages.Select(p => Relative(root, p)).ToList(), faults, clock.Elapsed);
    }

    static string Relative(string root, string path) => Path.GetRelativePath(root, path).Replace(Path.DirectorySeparatorChar, '/');

    static async Task<(List<string> Faults, JsonObject? Inspection)> CheckPageAsync(DevToolsConnection devTools, string page, string screenshot, TimeSpan timeout)
    {
        var faults = new List<string>();
        var browserFaults = new ConcurrentQueue<string>();
        var loaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        string? sessionId = null;
        void OnEvent(string method, string? session, JsonObject parameters)
        {
            if (session is null || session != Volatile.Read(ref sessionId)) return;
            switch (method)
            {
                case "Page.loadEventFired":
                    loaded.TrySetResult();
                    break;
                case "Runtime.consoleAPICalled" when (parameters["type"]?.GetValue<string>() is "error" or "assert"):
                    browserFaults.Enqueue($"console error: {ConsoleText(parameters)}");
                    break;
                case "Runtime.exceptionThrown":
                    var details = parameters["exceptionDetails"];
                    browserFaults.Enqueue($"uncaught exception: {details?["exception"]?["description"]?.GetValue<string>() ?? details?["text"]?.GetValue<string>()}");
                    break;
                case "Log.entryAdded" when (parameters["entry"]?["level"]?.GetValue<string>() == "error"):
                    var entry = parameters["entry"]!;
                    browserFaults.Enqueue($"browser error: {entry["text"]?.GetValue<string>()}{(entry["url"] is { } url ? $" ({url.GetValue<string>()})" : "")}");
                    break;
            }
        }

        using var cancellation = new CancellationTokenSource(timeout);
        var token = cancellation.Token;
        string? targetId = null;
        devTools.EventReceived += OnEvent;
        JsonObject? inspection = null;
        try
        {
            targetId = (await devTools.SendAsync("Target.createTarget", new { url = "about:blank" }, cancellation: token))["targetId"]!.GetValue<string>();
            var attached = await devTools.SendAsync("Target.attachToTarget", new { targetId, flatten = true }, cancellation: token);
            Volatile.Write(ref sessionId, attached["sessionId"]!.GetValue<string>());
            foreach (string domain in (string[])["Page", "Runtime", "Log"])
                await devTools.SendAsync($"{domain}.enable", sessionId: sessionId, cancellation: token);
            await devTools.SendAsync("Emulation.setDeviceMetricsOverride", new { width = ViewportWidth, height = ViewportHeight, deviceScaleFactor = 1, mobile = false }, sessionId, token);

            var navigation = await devTools.SendAsync("Page.navigate", new { url = new Uri(page).AbsoluteUri }, sessionId, token);
            if (navigation["errorText"]?.GetValue<string>() is { Length: > 0 } navigationError)
            {
                faults.Add($"the page did not open: {navigationError}");
                return (faults, null);
            }
            await loaded.Task.WaitAsync(token);
            if (await EvaluateAsync(devTools, sessionId, SettleScript, token) is { } settleError)
                faults.Add($"the page's script failed: {settleError}");
            var inspected = await devTools.SendAsync("Runtime.evaluate", new { expression = InspectScript, returnByValue = true }, sessionId, token);
            inspection = inspected["result"]?["value"] as JsonObject
                ?? throw new DevToolsException($"the page inspection returned no value: {inspected.ToJsonString()}");
            faults.AddRange(Inspect(inspection));
            await SaveScreenshotAsync(devTools, sessionId, screenshot, token);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            faults.Add($"the page did not settle within {timeout.TotalSeconds:F0} s");
        }
        finally
        {
            devTools.EventReceived -= OnEvent;
            if (targetId is not null)
            {
                using var closing = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await devTools.SendAsync("Target.closeTarget", new { targetId }, cancellation: closing.Token);
            }
        }
        faults.InsertRange(0, browserFaults);
        return (faults, inspection);
    }

    /// <summary>Runs a script that returns a promise; the error it raised, or null.</summary>
    static async Task<string?> EvaluateAsync(DevToolsConnection devTools, string sessionId, string expression, CancellationToken token)
    {
        var result = await devTools.SendAsync("Runtime.evaluate", new { expression, awaitPromise = true }, sessionId, token);
        return result["exceptionDetails"] is { } details
            ? details["exception"]?["description"]?.GetValue<string>() ?? details["text"]?.GetValue<string>() ?? "(no message)"
            : null;
    }

    static IEnumerable<string> Inspect(JsonObject inspection)
    {
        foreach (var equation in inspection["equations"]!.AsArray())
            yield return $"equation KaTeX could not render: {equation!["tex"]} ({equation["error"]})";
        foreach (var chart in inspection["charts"]!.AsArray().Where(c => !c!["drawn"]!.GetValue<bool>()))
            yield return $"chart {chart!["number"]} ({chart["caption"]}) was not drawn by plotly.js (no svg.main-svg)";
        foreach (var image in inspection["images"]!.AsArray())
            yield return $"image did not load: {image}";
    }

    static async Task SaveScreenshotAsync(DevToolsConnection devTools, string sessionId, string path, CancellationToken token)
    {
        var metrics = await devTools.SendAsync("Page.getLayoutMetrics", sessionId: sessionId, cancellation: token);
        var size = metrics["cssContentSize"]!;
        double width = Math.Max(ViewportWidth, Math.Ceiling(size["width"]!.GetValue<double>()));
        double height = Math.Ceiling(size["height"]!.GetValue<double>());
        var shot = await devTools.SendAsync("Page.captureScreenshot", new
        {
            format = "png",
            captureBeyondViewport = true,
            clip = new { x = 0, y = 0, width, height, scale = 1 },
        }, sessionId, token);
        DualLora.IO.AtomicFile.WriteAllBytes(path, Convert.FromBase64String(shot["data"]!.GetValue<string>()));
    }

    static string ConsoleText(JsonObject parameters) => string.Join(" ", parameters["args"]?.AsArray().Select(argument =>
        argument?["value"] is JsonValue value ? value.ToString() : argument?["description"]?.GetValue<string>() ?? argument?["type"]?.GetValue<string>()) ?? []);

    /// <summary>Links to local files that do not exist, and to anchors their page does not have.</summary>
    static IEnumerable<SiteFault> BrokenLinks(List<(string Page, string Href, Uri Target)> links, Dictionary<string, HashSet<string>> idsByPage)
    {
        foreach (var (page, href, target) in links)
        {
            if (!target.IsFile) continue;
            string path = target.LocalPath;
            if (!File.Exists(path) && !Directory.Exists(path))
            {
                yield return new SiteFault(page, $"broken link {href}: {Path.GetFileName(path)} does not exist");
                continue;
            }
            if (target.Fragment.Length <= 1) continue;
            string anchor = Uri.UnescapeDataString(target.Fragment[1..]);
            bool found = idsByPage.TryGetValue(path, out var ids) ? ids.Contains(anchor) : HasAnchor(path, anchor);
            if (!found) yield return new SiteFault(page, $"broken link {href}: no element with id '{anchor}' in {Path.GetFileName(path)}");
        }
    }

    // For a linked page the check did not open: its anchors as written in the file.
    static bool HasAnchor(string path, string anchor) =>
        File.Exists(path) && AnchorAttribute().Matches(File.ReadAllText(path)).Any(m => System.Net.WebUtility.HtmlDecode(m.Groups[1].Value) == anchor);

    [GeneratedRegex(@"\b(?:id|name)\s*=\s*""([^""]*)""")]
    private static partial Regex AnchorAttribute();
}
