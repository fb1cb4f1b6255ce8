using System.Diagnostics;

namespace DualLora.Cli.Site;

/// <summary>
/// A headless chromium of this process's own, with a fresh profile in a temporary folder, reachable over
/// DevTools on a port of the loopback interface that chromium picks. Disposing closes it, kills it (and
/// its child processes) if it does not exit, and removes the profile.
/// </summary>
sealed class HeadlessChromium : IAsyncDisposable
{
    public const string InstallHint = "install it with `apt-get install -y chromium` (Debian), or set DUALLORA_CHROMIUM to a chromium or chrome executable";
    static readonly string[] Names = ["chromium", "chromium-browser", "google-chrome-stable", "google-chrome"];

    readonly Process process;
    readonly string profile;
    readonly StringWriter errorOutput = new();

    public DevToolsConnection DevTools { get; private set; } = null!;

    HeadlessChromium(Process process, string profile)
    {
        this.process = process;
        this.profile = profile;
    }

    /// <summary>The browser executable: DUALLORA_CHROMIUM, else the first of chromium's usual names on PATH.</summary>
    public static string Locate()
    {
        if (Environment.GetEnvironmentVariable("DUALLORA_CHROMIUM") is { Length: > 0 } configured)
            return File.Exists(configured) ? configured : throw new FileNotFoundException($"DUALLORA_CHROMIUM is {configured}, which does not exist; {InstallHint}.");
        var folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        foreach (string name in Names)
            foreach (string folder in folders)
                if (File.Exists(Path.Combine(folder, name))) return Path.Combine(folder, name);
        throw new FileNotFoundException($"the browser check needs chromium, and none of {string.Join(", ", Names)} is on PATH; {InstallHint}.");
    }

    public static async Task<HeadlessChromium> StartAsync(TimeSpan timeout)
    {
        string executable = Locate();
        string profile = Directory.CreateTempSubdirectory("duallora-chromium-").FullName;
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in (string[])[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-extensions",
            "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
            "--remote-debugging-port=0", $"--user-data-dir={profile}", "about:blank"])
            start.ArgumentList.Add(argument);

        var browser = new HeadlessChromium(Process.Start(start) ?? throw new InvalidOperationException($"{executable} did not start."), profile);
        try
        {
            browser.process.ErrorDataReceived += (_, line) => { if (line.Data is not null) lock (browser.errorOutput) browser.errorOutput.WriteLine(line.Data); };
            browser.process.BeginOutputReadLine();
            browser.process.BeginErrorReadLine();
            using var cancellation = new CancellationTokenSource(timeout);
            var endpoint = await browser.WaitForEndpointAsync(executable, timeout, cancellation.Token);
            browser.DevTools = await DevToolsConnection.ConnectAsync(endpoint, cancellation.Token);
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    /// <summary>Chromium (listening on the loopback interface) writes its port and browser path to DevToolsActivePort in the profile once it listens.</summary>
    async Task<Uri> WaitForEndpointAsync(string executable, TimeSpan timeout, CancellationToken cancellation)
    {
        string portFile = Path.Combine(profile, "DevToolsActivePort");
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"{executable} exited with code {process.ExitCode} before it opened DevTools: {LastErrorLines()}");
            if (File.Exists(portFile) && File.ReadAllLines(portFile) is [var port, var path, ..] && int.TryParse(port, out _))
                return new Uri($"ws://127.0.0.1:{port}{path}");
            if (cancellation.IsCancellationRequested)
                throw new TimeoutException($"{executable} did not open DevTools within {timeout.TotalSeconds:F0} s: {LastErrorLines()}");
            try
            {
                await Task.Delay(50, cancellation);
            }
            catch (OperationCanceledException)
            {
                // Checked at the top of the loop, with the browser's own words.
            }
        }
    }

    string LastErrorLines()
    {
        lock (errorOutput)
        {
            var lines = errorOutput.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return lines.Length == 0 ? "(no output)" : string.Join(" | ", lines.TakeLast(5));
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (DevTools is not null)
        {
            try
            {
                using var closing = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await DevTools.SendAsync("Browser.close", cancellation: closing.Token);
            }
            catch (Exception e) when (e is DevToolsException or OperationCanceledException)
            {
                // Killed below.
            }
            await DevTools.DisposeAsync();
        }
        if (!process.WaitForExit(TimeSpan.FromSeconds(3))) process.Kill(entireProcessTree: true);
        process.WaitForExit();
        process.Dispose();
        DeleteProfile();
    }

    void DeleteProfile()
    {
        // Chromium's helper processes may still be letting go of files for a moment after it exits.
        for (int attempt = 0; attempt < 10; attempt++)
        {
            try
            {
                if (Directory.Exists(profile)) Directory.Delete(profile, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 9)
            {
                Thread.Sleep(100);
            }
        }
    }
}
