using System.Diagnostics;
using System.Text.Json.Nodes;

namespace DualLora.Cli.Benchmarks;

/// <summary>
/// The PyTorch twin (<c>bench/pytorch/twin.py</c>, shipped inside this assembly) running in a Python process of
/// its own: one JSON request a line on its stdin, one JSON answer a line on its stdout. Debian's python3-torch is
/// PyTorch 1.13; its OpenMP and OpenBLAS thread pools fight on few cores unless OpenMP waits passively, so the
/// process gets <c>OMP_WAIT_POLICY=PASSIVE</c>.
/// </summary>
public sealed class PyTorchTwin : IDisposable
{
    const string ScriptResource = "twin.py";
    readonly Process process;
    readonly string folder;

    /// <summary>PyTorch's version as the twin reports it.</summary>
    public string TorchVersion { get; }
    /// <summary>The BLAS library the twin's PyTorch loaded for a matrix product.</summary>
    public string Blas { get; }

    public PyTorchTwin(string python, int threads)
    {
        folder = Directory.CreateTempSubdirectory("duallora-twin-").FullName;
        string script = Path.Combine(folder, ScriptResource);
        using (var resource = typeof(PyTorchTwin).Assembly.GetManifestResourceStream(ScriptResource)
                              ?? throw new InvalidOperationException($"the assembly carries no {ScriptResource}."))
        using (var file = File.Create(script))
            resource.CopyTo(file);

        var start = new ProcessStartInfo(python)
        {
            UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        start.ArgumentList.Add(script);
        start.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        start.Environment["OMP_NUM_THREADS"] = threads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{python} did not start.");
        }
        catch (System.ComponentModel.Win32Exception error)
        {
            Directory.Delete(folder, recursive: true);
            throw new UsageException($"{python} cannot be started ({error.Message}): bench pytorch needs Debian's python3 and python3-torch (apt install python3-torch), or --python naming a Python with PyTorch.");
        }
        process.ErrorDataReceived += (_, line) => { if (line.Data is { } text) lock (errors) { errors.Enqueue(text); if (errors.Count > 20) errors.Dequeue(); } };
        process.BeginErrorReadLine();
        try
        {
            var hello = ReadAnswer("start");
            TorchVersion = hello["torch"]!.GetValue<string>();
            Blas = hello["blas"]!.GetValue<string>();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    readonly Queue<string> errors = new();

    /// <summary>A path in the twin's scratch folder, for files the two sides exchange.</summary>
    public string Scratch(string name) => Path.Combine(folder, name);

    /// <summary>Sends one request and returns its answer; a failed request throws with the twin's error.</summary>
    public JsonObject Ask(JsonObject request)
    {
        string op = request["op"]!.GetValue<string>();
        process.StandardInput.WriteLine(request.ToJsonString());
        process.StandardInput.Flush();
        return ReadAnswer(op);
    }

    JsonObject ReadAnswer(string op)
    {
        string? line = process.StandardOutput.ReadLine();
        if (line is null)
        {
            process.WaitForExit(5000);
            string stderr;
            lock (errors) stderr = string.Join(Environment.NewLine, errors);
            if (stderr.Contains("No module named 'torch'", StringComparison.Ordinal))
                throw new UsageException("the PyTorch twin needs PyTorch: apt install python3-torch (Debian's PyTorch 1.13), or --python naming a Python that has it.");
            throw new InvalidOperationException($"the PyTorch twin ended during '{op}' (exit {(process.HasExited ? process.ExitCode : -1)}):{Environment.NewLine}{stderr}");
        }
        var answer = JsonNode.Parse(line)?.AsObject() ?? throw new InvalidOperationException($"the PyTorch twin answered '{op}' with '{line}'.");
        if (answer["ok"]?.GetValue<bool>() != true)
            throw new InvalidOperationException($"the PyTorch twin failed '{op}': {answer["error"]}{Environment.NewLine}{answer["trace"]}");
        return answer;
    }

    public void Dispose()
    {
        try
        {
            if (!process.HasExited)
            {
                process.StandardInput.WriteLine(new JsonObject { ["op"] = "exit" }.ToJsonString());
                process.StandardInput.Flush();
                if (!process.WaitForExit(10_000)) process.Kill(entireProcessTree: true);
            }
        }
        catch (IOException)
        {
            // The twin is gone already.
        }
        process.Dispose();
        Directory.Delete(folder, recursive: true);
    }
}
