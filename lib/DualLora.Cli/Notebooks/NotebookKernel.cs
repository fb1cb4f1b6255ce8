using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Microsoft.CodeAnalysis.Scripting;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.Events;
using Microsoft.DotNet.Interactive.PackageManagement;
using Microsoft.CodeAnalysis;

namespace DualLora.Cli.Notebooks;

/// <summary>How one submitted cell went: its outputs in nbformat form, or the failure.</summary>
public sealed record CellResult(IReadOnlyList<JsonObject> Outputs, CellFailure? Failure);

/// <summary>Why a cell failed and, where known, on which line of the cell.</summary>
public sealed record CellFailure(string Message, int? Line, Exception? Exception);

/// <summary>
/// The .NET Interactive C# kernel, hosted in this process as the dotnet-interactive tool (VS Code's
/// Polyglot Notebooks kernel) hosts it: a <see cref="CompositeKernel"/> holding a <see cref="CSharpKernel"/>
/// with <c>#r "nuget: ..."</c> support and the kernel helpers (<c>display</c>). Cells go in as
/// <see cref="SubmitCode"/>; what the kernel publishes (console text, displayed values and their updates,
/// the return value, the failure) comes back as nbformat outputs.
/// </summary>
public sealed class NotebookKernel : IDisposable
{
    readonly CompositeKernel root;
    int executionCount;

    public NotebookKernel()
    {
        var csharp = new CSharpKernel().UseKernelHelpers();
        csharp.UseNugetDirective((kernel, packages) =>
        {
            kernel.AddAssemblyReferences(packages.SelectMany(p => p.AssemblyPaths));
            return Task.CompletedTask;
        });
        ConfigureScript(csharp);
        root = new CompositeKernel { csharp };
        root.DefaultKernelName = csharp.Name;
    }

    /// <summary>
    /// Two settings the kernel offers no option for, made on its script options before the first cell
    /// (the runner's tests fail if a package update renames these fields): debug information, without
    /// which an exception's stack trace carries no line and a failing notebook could only be reported by
    /// cell; and the reference resolution of the dotnet-interactive tool (<see cref="KernelReferences"/>).
    /// The kernel resets its resolver when it sees a new working directory, so that is set to the current one.
    /// </summary>
    static void ConfigureScript(CSharpKernel kernel)
    {
        const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;
        FieldInfo Field(string name) => typeof(CSharpKernel).GetField(name, Private)
            ?? throw new InvalidOperationException($"{typeof(CSharpKernel).Assembly.GetName()} has no field {name}; the notebook runner cannot configure it.");
        string folder = Directory.GetCurrentDirectory();
        var options = (ScriptOptions)Field("_scriptOptions").GetValue(kernel)!;
        Field("_scriptOptions").SetValue(kernel, KernelReferences.Apply(options.WithEmitDebugInformation(true), folder)
            .WithSourceResolver(new SourceFileResolver([], folder)));
        Field("_workingDirectory").SetValue(kernel, folder);
    }

    /// <summary>Runs one cell's source and returns its outputs, or why it failed.</summary>
    public CellResult Submit(string source)
    {
        var result = root.SendAsync(new SubmitCode(source)).GetAwaiter().GetResult();
        var outputs = new NotebookOutputs();
        CellFailure? failure = null;
        foreach (var kernelEvent in result.Events)
        {
            switch (kernelEvent)
            {
                case StandardOutputValueProduced text: outputs.AppendStream("stdout", text.FormattedValues); break;
                case StandardErrorValueProduced text: outputs.AppendStream("stderr", text.FormattedValues); break;
                case DisplayedValueUpdated updated: outputs.UpdateDisplay(updated.ValueId, updated.FormattedValues); break;
                case DisplayedValueProduced displayed: outputs.AppendDisplay(displayed.ValueId, displayed.FormattedValues); break;
                case ReturnValueProduced returned: outputs.AppendResult(returned.FormattedValues, executionCount + 1); break;
                case CommandFailed failed: failure = Failure(failed, result.Events.OfType<DiagnosticsProduced>(), source); break;
            }
        }
        executionCount++;
        return new CellResult(outputs.Items, failure);
    }

    static CellFailure Failure(CommandFailed failed, IEnumerable<DiagnosticsProduced> diagnostics, string source)
    {
        // Compilation errors come with diagnostics whose positions are the cell's own.
        var error = diagnostics.SelectMany(d => d.Diagnostics).FirstOrDefault(d => d.Severity == DiagnosticSeverity.Error);
        if (error != null)
            return new CellFailure($"{error.Code}: {error.Message}", error.LinePositionSpan.Start.Line + 1, failed.Exception);
        if (failed.Exception is { } exception)
            return new CellFailure($"{exception.GetType().FullName}: {exception.Message}", CellLine(exception, source), exception);
        return new CellFailure(failed.Message, null, null);
    }

    /// <summary>
    /// The cell line of the innermost frame of the cell's own code. The kernel compiles the cell without
    /// its directive lines (and the blank lines right after one), so the compiled line is mapped back.
    /// </summary>
    static int? CellLine(Exception exception, string source)
    {
        for (var e = exception; e != null; e = e.InnerException)
        {
            var frame = new StackTrace(e, fNeedFileInfo: true).GetFrames()
                .FirstOrDefault(f => f.GetMethod()?.DeclaringType?.FullName?.StartsWith("Submission#", StringComparison.Ordinal) == true && f.GetFileLineNumber() > 0);
            if (frame != null) return CompiledLineToCellLine(source, frame.GetFileLineNumber());
        }
        return null;
    }

    internal static int CompiledLineToCellLine(string source, int compiledLine)
    {
        var lines = source.Replace("\r\n", "\n").Split('\n');
        int compiled = 0;
        bool afterDirective = false;
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            bool directive = line.StartsWith("#r ", StringComparison.Ordinal) || line.StartsWith("#!", StringComparison.Ordinal) || line.StartsWith("#i ", StringComparison.Ordinal);
            if (directive || (afterDirective && line.Length == 0)) { afterDirective = true; continue; }
            afterDirective = false;
            if (++compiled == compiledLine) return i + 1;
        }
        return compiledLine;
    }

    public void Dispose() => root.Dispose();
}
