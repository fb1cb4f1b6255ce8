using System.Diagnostics;
using DualLora.Runtime;

namespace DualLora.Cli.Notebooks;

/// <summary>A cell that failed: where (notebook, cell, line) and why.</summary>
public sealed class NotebookCellException(string notebook, int cell, int? line, string message, Exception? inner = null)
    : Exception($"{notebook}: cell {cell}{(line is int l ? $", line {l}" : "")}: {message}", inner)
{
    public string Notebook { get; } = notebook;
    public int Cell { get; } = cell;
    public int? Line { get; } = line;
}

/// <summary>How one cell went.</summary>
public sealed record CellRun(int Cell, int ExecutionCount, TimeSpan Elapsed, int Outputs);

/// <summary>How one notebook went, and where its executed copy was written.</summary>
public sealed record NotebookRun(string Notebook, IReadOnlyList<CellRun> Cells, TimeSpan Elapsed, string WrittenTo);

/// <summary>
/// Executes the code cells of a .NET Interactive C# notebook in order in the real .NET Interactive C#
/// kernel (<see cref="NotebookKernel"/>), one kernel per notebook, as VS Code's Polyglot Notebooks runs
/// them: the kernel resolves <c>#r "nuget: ..."</c> and <c>#r "path"</c> itself. The notebook runs in its
/// own folder (so relative <c>#r</c> paths resolve as in VS Code). On success the executed notebook is
/// written (in place or to an output folder); on failure nothing is written.
/// </summary>
public sealed class NotebookRunner(TextWriter log)
{
    static readonly object ProcessStateGate = new();

    /// <param name="notebookPath">The .ipynb to run.</param>
    /// <param name="outputFolder">Where the executed notebook goes; null writes it in place.</param>
    /// <param name="profile">Overrides environment.json's profile while the notebook runs (smoke for CI).</param>
    public NotebookRun Run(string notebookPath, string? outputFolder = null, Profile? profile = null)
    {
        var notebook = NotebookDocument.Load(notebookPath);
        var clock = Stopwatch.StartNew();
        List<CellRun> runs;

        // The current folder and the profile variable are process-wide: one notebook at a time.
        lock (ProcessStateGate)
        {
            string previousFolder = Directory.GetCurrentDirectory();
            string? previousProfile = Environment.GetEnvironmentVariable(RuntimeEnvironment.ProfileVariable);
            try
            {
                Directory.SetCurrentDirectory(Path.GetDirectoryName(notebook.Path)!);
                if (profile is Profile p) Environment.SetEnvironmentVariable(RuntimeEnvironment.ProfileVariable, p.ToString().ToLowerInvariant());
                runs = ExecuteCells(notebook);
            }
            finally
            {
                Environment.SetEnvironmentVariable(RuntimeEnvironment.ProfileVariable, previousProfile);
                Directory.SetCurrentDirectory(previousFolder);
            }
        }

        string written = outputFolder == null ? notebook.Path : Path.Combine(Path.GetFullPath(outputFolder), Path.GetFileName(notebook.Path));
        notebook.Save(written);
        return new NotebookRun(notebook.Path, runs, clock.Elapsed, written);
    }

    List<CellRun> ExecuteCells(NotebookDocument notebook)
    {
        string name = Path.GetFileName(notebook.Path);
        var codeCells = notebook.Cells.Where(c => c.IsCode).ToList();
        var runs = new List<CellRun>();
        using var kernel = new NotebookKernel();
        foreach (var cell in codeCells)
        {
            int executionCount = runs.Count + 1;
            var clock = Stopwatch.StartNew();
            log.Write($"  {name} cell {cell.Number} ({executionCount}/{codeCells.Count}) ... ");
            var result = kernel.Submit(cell.Source);
            if (result.Failure is { } failure)
            {
                log.WriteLine("failed");
                throw new NotebookCellException(name, cell.Number, failure.Line, failure.Message, failure.Exception);
            }
            NotebookDocument.SetResult(cell, executionCount, result.Outputs);
            runs.Add(new CellRun(cell.Number, executionCount, clock.Elapsed, result.Outputs.Count));
            log.WriteLine($"{clock.Elapsed.TotalSeconds:F2} s");
        }
        return runs;
    }
}
