using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using DualLora.Runtime;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.Scripting;

namespace DualLora.Cli.Notebooks;

/// <summary>
/// What every cell sees besides its own code, as in the .NET Interactive C# kernel: <c>display(...)</c>.
/// The kernel's other globals are deliberately absent, so a notebook that runs here also runs in VS Code.
/// </summary>
public sealed class NotebookGlobals
{
    internal CellOutputs? Current { get; set; }

    /// <summary>Shows a value below the cell, rendered by the notebook formatter (optionally as the given MIME types).</summary>
    public void display(object? value, params string[] mimeTypes) =>
        (Current ?? throw new InvalidOperationException("display() was called outside a running cell.")).AppendDisplay(value, mimeTypes);
}

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

/// <summary>How one notebook went, and where its executed copy and HTML page were written.</summary>
public sealed record NotebookRun(string Notebook, IReadOnlyList<CellRun> Cells, TimeSpan Elapsed, string WrittenTo, string? Html);

/// <summary>
/// Executes the code cells of a .NET Interactive C# notebook in order, in one C# scripting session
/// (Microsoft.CodeAnalysis.CSharp.Scripting), as the kernel would: each cell is a submission that sees the
/// variables of the cells before it, with the kernel's default imports and <c>display(...)</c>. The
/// first cell's <c>#r "nuget: NAME, VERSION"</c> lines are checked against the packages the project
/// provides and <c>#r "...DualLora.dll"</c> against the built library. On success the executed notebook is
/// written (in place or to an output folder) with an HTML page beside it; on failure nothing is written.
/// </summary>
public sealed class NotebookRunner(ProvidedPackages packages, TextWriter log)
{
    /// <summary>The namespaces the .NET Interactive C# kernel imports into every cell (CSharpKernel.cs).</summary>
    public static readonly string[] KernelImports =
        ["System", "System.Text", "System.Collections", "System.Collections.Generic", "System.Threading.Tasks", "System.Linq"];

    static readonly Regex NugetDirective = new(@"^#r\s+""nuget:\s*(?<name>[^,""\s]+)\s*(,\s*(?<version>[^""\s]+)\s*)?""\s*$");
    static readonly Regex FileDirective = new(@"^#r\s+""(?<path>[^""]+)""\s*$");
    static readonly object ProcessStateGate = new();

    /// <param name="notebookPath">The .ipynb to run.</param>
    /// <param name="outputFolder">Where the executed notebook goes; null writes it in place.</param>
    /// <param name="htmlFolder">Where the HTML page goes; null puts it beside the executed notebook.</param>
    /// <param name="profile">Overrides environment.json's profile while the notebook runs (smoke for CI).</param>
    public NotebookRun Run(string notebookPath, string? outputFolder = null, string? htmlFolder = null, Profile? profile = null)
    {
        var notebook = NotebookDocument.Load(notebookPath);
        string name = Path.GetFileName(notebook.Path);
        string folder = Path.GetDirectoryName(notebook.Path)!;
        var clock = Stopwatch.StartNew();
        var runs = new List<CellRun>();

        // The current folder, the profile variable and the console are process-wide: one notebook at a time.
        lock (ProcessStateGate)
        {
            string previousFolder = Directory.GetCurrentDirectory();
            string? previousProfile = Environment.GetEnvironmentVariable(RuntimeEnvironment.ProfileVariable);
            TextWriter previousOut = Console.Out, previousError = Console.Error;
            var globals = new NotebookGlobals();
            try
            {
                Directory.SetCurrentDirectory(folder);
                if (profile is Profile p) Environment.SetEnvironmentVariable(RuntimeEnvironment.ProfileVariable, p.ToString().ToLowerInvariant());
                Console.SetOut(new CellConsoleWriter(() => globals.Current, "stdout"));
                Console.SetError(new CellConsoleWriter(() => globals.Current, "stderr"));
                ExecuteCells(notebook, globals, runs, log);
            }
            finally
            {
                Console.SetOut(previousOut);
                Console.SetError(previousError);
                Environment.SetEnvironmentVariable(RuntimeEnvironment.ProfileVariable, previousProfile);
                Directory.SetCurrentDirectory(previousFolder);
            }
        }

        string written = outputFolder == null ? notebook.Path : Path.Combine(Path.GetFullPath(outputFolder), name);
        notebook.Save(written);
        string html = Path.Combine(Path.GetFullPath(htmlFolder ?? Path.GetDirectoryName(written)!), Path.ChangeExtension(name, ".html"));
        NotebookHtml.Write(NotebookDocument.Load(written), html);
        return new NotebookRun(notebook.Path, runs, clock.Elapsed, written, html);
    }

    void ExecuteCells(NotebookDocument notebook, NotebookGlobals globals, List<CellRun> runs, TextWriter progress)
    {
        string name = Path.GetFileName(notebook.Path);
        var options = ScriptOptions.Default
            .WithMetadataResolver(new ReferencesOnlyFromDirectives())
            .WithReferences(FrameworkReferences())
            .WithImports(KernelImports)
            .WithEmitDebugInformation(true)
            .WithFileEncoding(Encoding.UTF8);
        ScriptState<object>? state = null;
        var codeCells = notebook.Cells.Where(c => c.IsCode).ToList();
        int executionCount = 0;

        foreach (var cell in codeCells)
        {
            executionCount++;
            var clock = Stopwatch.StartNew();
            progress.Write($"  {name} cell {cell.Number} ({executionCount}/{codeCells.Count}) ... ");
            string cellPath = $"{notebook.Path}#cell{cell.Number}";
            var outputs = new CellOutputs();
            globals.Current = outputs;
            try
            {
                var (code, references) = ApplyDirectives(notebook, cell);
                options = options.AddReferences(references).WithFilePath(cellPath);
                state = state == null
                    ? CSharpScript.RunAsync(code, options, globals, typeof(NotebookGlobals)).GetAwaiter().GetResult()
                    : state.ContinueWithAsync(code, options).GetAwaiter().GetResult();
                if (state.ReturnValue != null) outputs.AppendResult(state.ReturnValue, executionCount);
            }
            catch (Exception e)
            {
                progress.WriteLine("failed");
                if (e is NotebookCellException) throw;
                if (e is CompilationErrorException compilation)
                {
                    var error = compilation.Diagnostics.First(d => d.Severity == DiagnosticSeverity.Error);
                    int line = error.Location.GetLineSpan().StartLinePosition.Line + 1;
                    throw new NotebookCellException(name, cell.Number, line, $"{error.Id}: {error.GetMessage()}", e);
                }
                throw new NotebookCellException(name, cell.Number, LineIn(e, cellPath), $"{e.GetType().FullName}: {e.Message}", e);
            }
            finally
            {
                globals.Current = null;
            }
            NotebookDocument.SetResult(cell, executionCount, outputs.Items);
            runs.Add(new CellRun(cell.Number, executionCount, clock.Elapsed, outputs.Items.Count));
            progress.WriteLine($"{clock.Elapsed.TotalSeconds:F2} s");
        }
    }

    /// <summary>
    /// Checks and removes the cell's <c>#r</c> lines (each becomes an empty line, so line numbers stay
    /// those of the notebook) and returns the references they stand for.
    /// </summary>
    (string Code, List<MetadataReference> References) ApplyDirectives(NotebookDocument notebook, NotebookCell cell)
    {
        string name = Path.GetFileName(notebook.Path);
        var references = new List<MetadataReference>();
        var lines = cell.Source.Replace("\r\n", "\n").Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            Exception Error(string message) => new NotebookCellException(name, cell.Number, i + 1, message);
            if (line.StartsWith("#!", StringComparison.Ordinal) || line.StartsWith("#i ", StringComparison.Ordinal))
                throw Error($"'{line}': magic commands and #i are not supported; use only C# and #r.");
            if (!line.StartsWith("#r", StringComparison.Ordinal)) continue;

            if (NugetDirective.Match(line) is { Success: true } nuget)
            {
                string? version = nuget.Groups["version"].Success ? nuget.Groups["version"].Value : null;
                references.AddRange(packages.Resolve(nuget.Groups["name"].Value, version, Error));
            }
            else if (FileDirective.Match(line) is { Success: true } file)
            {
                references.Add(LibraryReference(notebook, file.Groups["path"].Value, Error));
            }
            else
            {
                throw Error($"'{line}' is not a directive this runner understands; use #r \"nuget: NAME, VERSION\" or #r \"path/DualLora.dll\".");
            }
            lines[i] = "";
        }
        return (string.Join("\n", lines), references);
    }

    /// <summary>
    /// A <c>#r</c> to the built library must name DualLora.dll and exist (so VS Code finds it too); the runner
    /// then references the library it was itself built with, so one copy of it is loaded.
    /// </summary>
    static MetadataReference LibraryReference(NotebookDocument notebook, string path, Func<string, Exception> error)
    {
        string library = typeof(RuntimeEnvironment).Assembly.Location;
        if (!string.Equals(Path.GetFileName(path), Path.GetFileName(library), StringComparison.OrdinalIgnoreCase))
            throw error($"#r \"{path}\": only the project's library ({Path.GetFileName(library)}) can be referenced by path.");
        string resolved = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(notebook.Path)!, path));
        if (!File.Exists(resolved))
            throw error($"#r \"{path}\": {resolved} does not exist; build the library first (dotnet build -c Release).");
        return MetadataReference.CreateFromFile(library);
    }

    /// <summary>
    /// Resolves nothing by itself: the scripting default would find any assembly of this process that a
    /// cell's code happens to need, so a notebook could compile here without the #r "nuget: ..." line VS Code
    /// needs. References come only from the framework and the directives.
    /// </summary>
    sealed class ReferencesOnlyFromDirectives : MetadataReferenceResolver
    {
        public override bool ResolveMissingAssemblies => false;
        public override System.Collections.Immutable.ImmutableArray<PortableExecutableReference> ResolveReference(string reference, string? baseFilePath, MetadataReferenceProperties properties) => [];
        public override bool Equals(object? other) => other is ReferencesOnlyFromDirectives;
        public override int GetHashCode() => nameof(ReferencesOnlyFromDirectives).GetHashCode();
    }

    /// <summary>The .NET framework's own assemblies, as the kernel offers them; packages come only from #r.</summary>
    static IEnumerable<MetadataReference> FrameworkReferences()
    {
        string frameworkFolder = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        return ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetDirectoryName(p) == frameworkFolder)
            .Select(p => MetadataReference.CreateFromFile(p));
    }

    /// <summary>The line of the failing cell in the exception's stack trace, if the cell's code is on it.</summary>
    static int? LineIn(Exception exception, string cellPath)
    {
        for (var e = exception; e != null; e = e.InnerException)
        {
            var frame = new StackTrace(e, fNeedFileInfo: true).GetFrames()
                .FirstOrDefault(f => f.GetFileName() == cellPath && f.GetFileLineNumber() > 0);
            if (frame != null) return frame.GetFileLineNumber();
        }
        return null;
    }
}
