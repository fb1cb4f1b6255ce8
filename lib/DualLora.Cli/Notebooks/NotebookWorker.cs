using System.Diagnostics;
using System.Text.Json;

namespace DualLora.Cli.Notebooks;

/// <summary>One line of the worker to the runner: a cell started, finished or failed, or the notebook is saved.</summary>
sealed record WorkerMessage(string Kind, int Cell = 0, int ExecutionCount = 0, int CodeCells = 0, double Seconds = 0, int Outputs = 0, int? Line = null, string? Error = null)
{
    public const string Start = "start", Done = "done", Failed = "failed", Saved = "saved";
}

/// <summary>
/// The process that holds a notebook's kernel for <see cref="NotebookRunner"/> (<c>notebooks worker</c>, not meant to
/// be called by hand): runs the code cells in order and reports each on the process's own standard output, each line
/// tagged with the runner's token. Those lines cannot mix with what cells print, which the kernel captures.
/// </summary>
static class NotebookWorker
{
    public static int Run(string notebookPath, string executedPath, string token)
    {
        using var channel = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true };
        void Send(WorkerMessage message) => channel.WriteLine($"{token} {JsonSerializer.Serialize(message)}");

        var notebook = NotebookDocument.Load(notebookPath);
        var codeCells = notebook.Cells.Where(c => c.IsCode).ToList();
        using var kernel = new NotebookKernel();
        for (int i = 0; i < codeCells.Count; i++)
        {
            var cell = codeCells[i];
            int executionCount = i + 1;
            Send(new WorkerMessage(WorkerMessage.Start, cell.Number, executionCount, codeCells.Count));
            var clock = Stopwatch.StartNew();
            var result = kernel.Submit(cell.Source);
            if (result.Failure is { } failure)
            {
                Send(new WorkerMessage(WorkerMessage.Failed, cell.Number, executionCount, codeCells.Count, Line: failure.Line, Error: failure.Message));
                return 1;
            }
            NotebookDocument.SetResult(cell, executionCount, result.Outputs);
            Send(new WorkerMessage(WorkerMessage.Done, cell.Number, executionCount, codeCells.Count, clock.Elapsed.TotalSeconds, result.Outputs.Count));
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(executedPath))!);
        notebook.Save(executedPath);
        Send(new WorkerMessage(WorkerMessage.Saved));
        return 0;
    }
}
