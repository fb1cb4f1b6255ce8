using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using DualLora.Runtime;

namespace DualLora.Cli.Notebooks;

/// <summary>A notebook's run failed: the message starts with the notebook's name.</summary>
public class NotebookRunException(string notebook, string message) : Exception($"{notebook}: {message}")
{
    public string Notebook { get; } = notebook;
}

/// <summary>A cell that failed: where (notebook, cell, line) and why.</summary>
public sealed class NotebookCellException(string notebook, int cell, int? line, string message)
    : NotebookRunException(notebook, $"cell {cell}{(line is int l ? $", line {l}" : "")}: {message}")
{
    public int Cell { get; } = cell;
    public int? Line { get; } = line;
}

/// <summary>How one cell went.</summary>
public sealed record CellRun(int Cell, int ExecutionCount, TimeSpan Elapsed, int Outputs);

/// <summary>How one notebook went, and where its executed copy was written.</summary>
public sealed record NotebookRun(string Notebook, IReadOnlyList<CellRun> Cells, TimeSpan Elapsed, string WrittenTo);

/// <summary>
/// Executes the code cells of a .NET Interactive C# notebook in order in the real .NET Interactive C#
/// kernel (<see cref="NotebookKernel"/>), as VS Code's Polyglot Notebooks runs them: in a process of its own
/// (a <see cref="NotebookWorker"/>), one per notebook, started in the notebook's folder (so relative <c>#r</c>
/// paths resolve as in VS Code); the kernel resolves <c>#r "nuget: ..."</c> and <c>#r "path"</c> itself.
/// Because the kernel has its own process, a cell that runs past the time limit is stopped and named, and a cell
/// that ends the process (<c>Environment.Exit</c>, a native crash) is reported as that cell's failure instead of
/// ending the run. On success the executed notebook is written (in place or to an output folder); on failure
/// nothing is written.
/// </summary>
public sealed class NotebookRunner(TextWriter log, TimeSpan? cellTimeout = null)
{
    /// <summary>Far above a full-profile cell on two CPU cores (06's training cell: 3.5 minutes), yet a hung cell is stopped within the half hour.</summary>
    public static readonly TimeSpan DefaultCellTimeout = TimeSpan.FromMinutes(30);

    readonly TimeSpan cellLimit = cellTimeout ?? DefaultCellTimeout;

    /// <param name="notebookPath">The .ipynb to run.</param>
    /// <param name="outputFolder">Where the executed notebook goes; null writes it in place.</param>
    /// <param name="profile">Overrides environment.json's profile while the notebook runs (smoke for CI).</param>
    public NotebookRun Run(string notebookPath, string? outputFolder = null, Profile? profile = null)
    {
        var notebook = NotebookDocument.Load(notebookPath);   // a malformed notebook is refused before any kernel starts
        var clock = Stopwatch.StartNew();
        // The worker writes the executed notebook there (atomically) only once every cell has run.
        string written = outputFolder == null ? notebook.Path : Path.Combine(Path.GetFullPath(outputFolder), Path.GetFileName(notebook.Path));
        var runs = Execute(notebook.Path, written, profile);
        return new NotebookRun(notebook.Path, runs, clock.Elapsed, written);
    }

    /// <summary>What the worker's standard output carried: one of its messages, or other text (printed as it is).</summary>
    sealed record WorkerLine(WorkerMessage? Message, string? Text);

    List<CellRun> Execute(string notebookPath, string executed, Profile? profile)
    {
        string name = Path.GetFileName(notebookPath);
        // Tags the worker's messages, so nothing a cell prints can pass for one.
        string token = $"notebook-worker-{Guid.NewGuid():N}";
        var start = CliProcess.StartInfo("notebooks", "worker", notebookPath, executed, token);
        start.WorkingDirectory = Path.GetDirectoryName(notebookPath)!;
        start.RedirectStandardOutput = start.RedirectStandardError = true;
        if (profile is Profile p) start.Environment[RuntimeEnvironment.ProfileVariable] = p.ToString().ToLowerInvariant();

        using var worker = Process.Start(start) ?? throw new NotebookRunException(name, "the notebook worker process did not start.");
        var lastErrors = new ConcurrentQueue<string>();
        worker.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lastErrors.Enqueue(e.Data);
            while (lastErrors.Count > 20) lastErrors.TryDequeue(out string? _);
        };
        worker.BeginErrorReadLine();
        var lines = new BlockingCollection<WorkerLine>();   // not disposed: the reader may still complete it after a kill
        _ = Task.Run(() =>
        {
            try
            {
                while (worker.StandardOutput.ReadLine() is { } line)
                    lines.Add(line.StartsWith(token + " ", StringComparison.Ordinal)
                        ? new WorkerLine(JsonSerializer.Deserialize<WorkerMessage>(line[(token.Length + 1)..]), null)
                        : new WorkerLine(null, line));
            }
            finally
            {
                lines.CompleteAdding();
            }
        });

        var runs = new List<CellRun>();
        int? running = null;   // the cell the worker is executing, once it has said so
        var deadline = DateTime.UtcNow + cellLimit;
        try
        {
            while (true)
            {
                var wait = deadline - DateTime.UtcNow;
                if (!lines.TryTake(out var item, wait < TimeSpan.Zero ? TimeSpan.Zero : wait))
                {
                    if (lines.IsCompleted) return Ended(worker, name, running, lastErrors);
                    log.WriteLine("stopped");
                    string limit = $"{cellLimit.TotalSeconds:0} s, the time limit of a cell (--cell-timeout)";
                    throw running is int cell
                        ? new NotebookCellException(name, cell, null, $"still running after {limit}; the run was stopped.")
                        : new NotebookRunException(name, $"the kernel did not start a cell within {limit}.");
                }
                if (item.Text is { } text)
                {
                    log.WriteLine(text);
                    continue;
                }
                var message = item.Message!;
                switch (message.Kind)
                {
                    case WorkerMessage.Start:
                        running = message.Cell;
                        deadline = DateTime.UtcNow + cellLimit;
                        log.Write($"  {name} cell {message.Cell} ({message.ExecutionCount}/{message.CodeCells}) ... ");
                        break;
                    case WorkerMessage.Done:
                        running = null;
                        runs.Add(new CellRun(message.Cell, message.ExecutionCount, TimeSpan.FromSeconds(message.Seconds), message.Outputs));
                        log.WriteLine($"{message.Seconds:F2} s");
                        break;
                    case WorkerMessage.Failed:
                        log.WriteLine("failed");
                        throw new NotebookCellException(name, message.Cell, message.Line, message.Error ?? "failed.");
                    case WorkerMessage.Saved:
                        worker.WaitForExit();
                        return runs;
                }
            }
        }
        finally
        {
            if (!worker.HasExited) worker.Kill(entireProcessTree: true);
        }
    }

    /// <summary>The worker's output ended before it saved the notebook: the process ended, inside a cell or outside one.</summary>
    List<CellRun> Ended(Process worker, string name, int? running, ConcurrentQueue<string> lastErrors)
    {
        worker.WaitForExit();
        string errors = lastErrors.IsEmpty ? "" : $"\n{string.Join("\n", lastErrors)}";
        if (running is int cell)
        {
            log.WriteLine("ended the process");
            throw new NotebookCellException(name, cell, null,
                $"the kernel's process ended (exit code {worker.ExitCode}) while this cell ran: a cell must not end the process (Environment.Exit, or a crash in native code).{errors}");
        }
        throw new NotebookRunException(name, $"the notebook worker ended (exit code {worker.ExitCode}) outside any cell.{errors}");
    }
}
