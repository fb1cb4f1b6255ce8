using System.Text.Json.Nodes;
using DualLora.Cli;
using DualLora.Cli.Notebooks;
using DualLora.Display;
using DualLora.Runtime;

namespace DualLora.Tests.Notebooks;

[Collection(ProcessStateCollection.Name)]
public class NotebookRunnerTests
{
    static readonly string LibraryReference = $"#r \"{typeof(PngImage).Assembly.Location}\"";

    /// <summary>Writes a notebook whose cells are given as ("code" | "markdown", source).</summary>
    static string WriteNotebook(TempFolder temp, params (string Kind, string Source)[] cells)
    {
        var json = new JsonObject
        {
            ["cells"] = new JsonArray(cells.Select(c => (JsonNode)new JsonObject
            {
                ["cell_type"] = c.Kind, ["metadata"] = new JsonObject(), ["source"] = NotebookDocument.Lines(c.Source),
                ["outputs"] = c.Kind == "code" ? new JsonArray() : null, ["execution_count"] = null,
            }).ToArray()),
            ["metadata"] = new JsonObject { ["kernelspec"] = new JsonObject { ["name"] = ".net-csharp", ["display_name"] = ".NET (C#)", ["language"] = "C#" } },
            ["nbformat"] = 4, ["nbformat_minor"] = 4,
        };
        string path = temp.File("test.ipynb");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    static NotebookRunner Runner() => new(TextWriter.Null);

    static JsonArray OutputsOf(string notebook, int cellIndex) => (JsonArray)JsonNode.Parse(File.ReadAllText(notebook))!["cells"]![cellIndex]!["outputs"]!;

    static string Text(JsonNode? node) => node is JsonArray lines ? string.Concat(lines.Select(l => l!.GetValue<string>())) : node!.GetValue<string>();

    [Fact]
    public void Cells_share_one_session_and_record_results_displays_and_console_text()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp,
            ("markdown", "# Title"),
            ("code", "var x = 1 + 2;"),
            ("code", "Console.WriteLine(\"hello\");\nConsole.Write(\"again\\n\");\nConsole.Error.WriteLine(\"careful\");\ndisplay(\"shown\");\nx * 10"));
        var run = Runner().Run(path, outputFolder: Path.Combine(temp.Path, "out"));

        string written = Path.Combine(temp.Path, "out", "test.ipynb");
        Assert.Equal(written, run.WrittenTo);
        var notebook = JsonNode.Parse(File.ReadAllText(written))!;
        Assert.Equal(4, notebook["nbformat"]!.GetValue<int>());
        Assert.Equal(".net-csharp", notebook["metadata"]!["kernelspec"]!["name"]!.GetValue<string>());
        Assert.Equal("csharp", notebook["metadata"]!["polyglot_notebook"]!["kernelInfo"]!["defaultKernelName"]!.GetValue<string>());
        Assert.Equal(1, notebook["cells"]![1]!["execution_count"]!.GetValue<int>());
        Assert.Equal(2, notebook["cells"]![2]!["execution_count"]!.GetValue<int>());

        var outputs = OutputsOf(written, 2);
        Assert.Equal(["stream", "stream", "display_data", "execute_result"], outputs.Select(o => o!["output_type"]!.GetValue<string>()));
        Assert.Equal("hello\nagain\n", Text(outputs[0]!["text"]));
        Assert.Equal("stdout", outputs[0]!["name"]!.GetValue<string>());
        Assert.Equal("careful\n", Text(outputs[1]!["text"]));
        Assert.Equal("stderr", outputs[1]!["name"]!.GetValue<string>());
        Assert.Equal("shown", Text(outputs[2]!["data"]!["text/plain"]));
        Assert.Contains("<pre>30</pre>", Text(outputs[3]!["data"]!["text/html"]));
        Assert.Equal(2, outputs[3]!["execution_count"]!.GetValue<int>());
    }

    [Fact]
    public void Updates_of_a_displayed_value_replace_each_other()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp, ("code", "var shown = display(\"first\");\nshown.Update(\"second\");\nshown.Update(\"third\");"));
        Runner().Run(path, Path.Combine(temp.Path, "out"));
        var outputs = OutputsOf(Path.Combine(temp.Path, "out", "test.ipynb"), 0);
        // This kernel build's display() returns another value than the one it published, so the updates carry an
        // id no output has (VS Code shows the same two outputs; Jupyter drops them). They replace each other.
        Assert.Equal(["first", "third"], outputs.Select(o => Text(o!["data"]!["text/plain"])));
    }

    [Fact]
    public void A_live_display_updated_fifty_times_is_one_output_with_the_last_value()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp,
            ("code", LibraryReference),
            ("code", "Console.WriteLine(\"before\");\nvar live = DualLora.Display.LiveDisplay.Show(\"step 0\");\nfor (int i = 1; i <= 50; i++) live.Update($\"step {i}\");\nConsole.WriteLine(\"after\");"));
        Runner().Run(path, Path.Combine(temp.Path, "out"));
        var outputs = OutputsOf(Path.Combine(temp.Path, "out", "test.ipynb"), 1);
        Assert.Equal(["stream", "display_data", "stream"], outputs.Select(o => o!["output_type"]!.GetValue<string>()));
        Assert.Equal("step 50", Text(outputs[1]!["data"]!["text/plain"]));
    }

    [Theory]
    [InlineData("int a = 1;\nthrow new Exception();", 2, 2)]
    [InlineData("#r \"nuget: X, 1.0\"\n\nint a = 1;\nthrow new Exception();", 2, 4)]
    [InlineData("// note\n#r \"nuget: X, 1.0\"\nint a = 1;\nthrow new Exception();", 3, 4)]
    [InlineData("#r \"nuget: X, 1.0\"\n// note\n\nthrow new Exception();", 3, 4)]
    [InlineData("\nint a = 1;\nthrow new Exception();", 3, 3)]
    public void Lines_the_kernel_compiled_map_back_to_the_cell(string cell, int compiledLine, int cellLine) =>
        Assert.Equal(cellLine, NotebookKernel.CompiledLineToCellLine(cell, compiledLine));

    [Fact]
    public void A_failing_cell_after_package_references_reports_its_own_line()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp, ("code", "#r \"nuget: Microsoft.ML.Tokenizers, 2.0.1\"\n\nint a = 1;\nthrow new InvalidOperationException(\"late\");"));
        var error = Assert.Throws<NotebookCellException>(() => Runner().Run(path, Path.Combine(temp.Path, "out")));
        Assert.Equal(4, error.Line);
        Assert.Contains("late", error.Message);
    }

    [Fact]
    public void Cells_get_only_the_kernel_imports()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp, ("code", "var folder = Path.GetTempPath();"));
        var error = Assert.Throws<NotebookCellException>(() => Runner().Run(path, Path.Combine(temp.Path, "out")));
        Assert.Contains("CS0103", error.Message);
        Assert.Contains("'Path'", error.Message);
    }

    [Fact]
    public void A_failing_cell_stops_the_run_names_the_cell_and_line_and_writes_nothing()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp,
            ("code", "int a = 1;"),
            ("markdown", "text"),
            ("code", "int b = 2;\nthrow new InvalidOperationException(\"boom\");"),
            ("code", "int c = 3;"));
        string before = File.ReadAllText(path);

        var error = Assert.Throws<NotebookCellException>(() => Runner().Run(path));
        Assert.Equal(3, error.Cell);
        Assert.Equal(2, error.Line);
        Assert.Contains("test.ipynb: cell 3, line 2: System.InvalidOperationException: boom", error.Message);
        Assert.Equal(before, File.ReadAllText(path));
        Assert.Equal(["test.ipynb"], Directory.GetFiles(temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void A_shape_mistake_in_a_cell_is_reported_as_that_cells_error_and_the_run_stops_cleanly()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp,
            ("code", $"#r \"nuget: TorchSharp-cpu, 0.107.0\"\n{LibraryReference}"),
            ("code", "using static TorchSharp.torch;\nDualLora.Runtime.TorchRuntime.EnsureLoaded();\nvar a = randn(4, 4);\nvar product = a.matmul(randn(3, 3));"),
            ("code", "int after = 1;"));
        var error = Assert.Throws<NotebookCellException>(() => Runner().Run(path, Path.Combine(temp.Path, "out")));
        Assert.Equal(2, error.Cell);
        Assert.Equal(4, error.Line);
        Assert.Contains("mat1 and mat2 shapes cannot be multiplied", error.Message);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "out")));
    }

    [Fact]
    public void A_cell_past_the_time_limit_is_stopped_and_named_and_nothing_is_written()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp, ("code", "int a = 1;"), ("code", "while (true) { }"), ("code", "int c = 3;"));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = Assert.Throws<NotebookCellException>(() => new NotebookRunner(TextWriter.Null, TimeSpan.FromSeconds(3)).Run(path, Path.Combine(temp.Path, "out")));
        Assert.Equal(2, error.Cell);
        Assert.Contains("test.ipynb: cell 2: still running after 3 s, the time limit of a cell (--cell-timeout)", error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the run took {clock.Elapsed}");
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "out")));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void A_cell_that_ends_the_process_fails_the_run_as_that_cell(int exitCode)
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp, ("code", "int a = 1;"), ("code", $"Console.WriteLine(\"bye\");\nEnvironment.Exit({exitCode});"), ("code", "int c = 3;"));
        string before = File.ReadAllText(path);
        var error = Assert.Throws<NotebookCellException>(() => Runner().Run(path));
        Assert.Equal(2, error.Cell);
        Assert.Contains($"the kernel's process ended (exit code {exitCode}) while this cell ran", error.Message);
        Assert.Equal(before, File.ReadAllText(path));
    }

    [Fact]
    public void A_time_limit_that_is_not_a_positive_number_of_seconds_is_bad_usage()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp, ("code", "int a = 1;"));
        var errors = new StringWriter();
        Assert.Equal(2, Commands.Run(["notebooks", "run", path, "--cell-timeout", "0"], TextWriter.Null, errors));
        Assert.Contains("--cell-timeout must be a positive whole number, got '0'", errors.ToString());
    }

    [Fact]
    public void A_compile_error_reports_its_line()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp, ("code", "int a = 1;\n\nint b = \"text\";"));
        var error = Assert.Throws<NotebookCellException>(() => Runner().Run(path, Path.Combine(temp.Path, "out")));
        Assert.Equal(1, error.Cell);
        Assert.Equal(3, error.Line);
        Assert.Contains("CS0029", error.Message);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "out")));
    }

    [Theory]
    [InlineData("#r \"nuget: DualLora.No.Such.Package, 1.0.0\"", "DualLora.No.Such.Package")]
    [InlineData("#r \"../missing/DualLora.dll\"", "DualLora.dll")]
    [InlineData("#!frobnicate", "#!frobnicate")]
    public void Directives_the_kernel_cannot_resolve_fail_the_cell(string directive, string expected)
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp, ("code", $"// references\n{directive}"));
        var error = Assert.Throws<NotebookCellException>(() => Runner().Run(path, Path.Combine(temp.Path, "out")));
        Assert.Equal(1, error.Cell);
        Assert.Contains(expected, error.Message);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "out")));
    }

    [Fact]
    public void Package_and_library_references_resolve_and_images_are_png_outputs()
    {
        using var temp = new TempFolder();
        string path = WriteNotebook(temp,
            ("code", $"#r \"nuget: TorchSharp-cpu, 0.107.0\"\n#r \"nuget: SkiaSharp, 3.119.4\"\n{LibraryReference}"),
            ("code", "using DualLora.Display;\nFormatters.Register();\nDualLora.Runtime.TorchRuntime.EnsureLoaded();\nPngImage.Grayscale(TorchSharp.torch.eye(3), scale: 2)"));
        Runner().Run(path, Path.Combine(temp.Path, "out"));
        var result = OutputsOf(Path.Combine(temp.Path, "out", "test.ipynb"), 1).Single()!;
        byte[] png = Convert.FromBase64String(result["data"]!["image/png"]!.GetValue<string>());
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);

    }

    [Fact]
    public void A_package_the_notebook_does_not_reference_is_not_found_even_if_the_runner_has_it()
    {
        // As in VS Code: the library's own dependencies come only with their #r "nuget: ..." line.
        using var temp = new TempFolder();
        string call = "DualLora.Multimodal.HuggingFaceModels.LoadTokenizer(\"nowhere\");";
        string without = WriteNotebook(temp, ("code", $"{LibraryReference}\n{call}"));
        var error = Assert.Throws<NotebookCellException>(() => Runner().Run(without, Path.Combine(temp.Path, "out")));
        Assert.Contains("CS0012", error.Message);
        Assert.Contains("Microsoft.ML.Tokenizers", error.Message);

        string with = WriteNotebook(temp, ("code", $"#r \"nuget: Microsoft.ML.Tokenizers, 2.0.1\"\n{LibraryReference}\ntry {{ {call} }} catch (System.IO.FileNotFoundException) {{ }}"));
        Runner().Run(with, Path.Combine(temp.Path, "out"));
    }

    [Theory]
    [InlineData("{ not json", "not valid JSON")]
    [InlineData("""{"nbformat": 3, "cells": [], "metadata": {}}""", "'nbformat' must be 4")]
    [InlineData("""{"nbformat": 4, "metadata": {"kernelspec": {"name": ".net-csharp"}}}""", "'cells' is missing")]
    [InlineData("""{"nbformat": 4, "cells": [], "metadata": {"kernelspec": {"name": "python3"}}}""", "'python3'")]
    [InlineData("""{"nbformat": 4, "cells": [{"cell_type": "code", "metadata": {}}], "metadata": {"kernelspec": {"name": ".net-csharp"}}}""", "cell 1 has no 'source'")]
    [InlineData("""{"nbformat": 4, "cells": [{"cell_type": "sql", "source": ""}], "metadata": {"kernelspec": {"name": ".net-csharp"}}}""", "cell_type 'sql'")]
    [InlineData("""{"nbformat": 4, "cells": [{"cell_type": "code", "source": "", "metadata": {"polyglot_notebook": {"kernelName": "fsharp"}}}], "metadata": {"kernelspec": {"name": ".net-csharp"}}}""", "'fsharp' kernel")]
    public void Malformed_notebooks_are_rejected_naming_the_file(string content, string expected)
    {
        using var temp = new TempFolder();
        string path = temp.File("bad.ipynb");
        File.WriteAllText(path, content);
        var error = Assert.Throws<NotebookFormatException>(() => Runner().Run(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Equal(content, File.ReadAllText(path));
    }

    [Fact]
    public void The_command_line_returns_distinct_exit_codes_for_bad_input_and_failing_cells()
    {
        using var temp = new TempFolder();
        var errors = new StringWriter();
        string bad = temp.File("bad.ipynb");
        File.WriteAllText(bad, "[]");
        Assert.Equal(2, Commands.Run(["notebooks", "run", bad], TextWriter.Null, errors));
        Assert.Contains("bad.ipynb: the top level must be a JSON object", errors.ToString());

        string failing = WriteNotebook(temp, ("code", "throw new Exception(\"no\");"));
        Assert.Equal(1, Commands.Run(["notebooks", "run", failing], TextWriter.Null, errors));
        Assert.Contains("cell 1, line 1: System.Exception: no", errors.ToString());

        Assert.Equal(2, Commands.Run(["notebooks", "run", failing, "--profile", "huge"], TextWriter.Null, errors));
        Assert.Equal(2, Commands.Run(["frobnicate"], TextWriter.Null, errors));
    }

    [Fact]
    public void The_committed_notebooks_are_small_and_carry_no_plotly_js()
    {
        // Charts are static SVG plus their data; plotly.js comes from the site, never from a notebook.
        string root = Path.GetDirectoryName(RuntimeEnvironment.Find(AppContext.BaseDirectory).SourceFile)!;
        foreach (string notebook in Directory.GetFiles(Path.Combine(root, "notebooks"), "*.ipynb"))
        {
            Assert.True(new FileInfo(notebook).Length < 1_500_000, $"{Path.GetFileName(notebook)} is {new FileInfo(notebook).Length:N0} bytes");
            Assert.DoesNotContain("plotly.js v", File.ReadAllText(notebook));
        }
    }

    [Fact]
    public void Every_notebook_of_the_project_runs_with_the_smoke_profile()
    {
        using var temp = new TempFolder();
        string root = Path.GetDirectoryName(RuntimeEnvironment.Find(AppContext.BaseDirectory).SourceFile)!;
        var notebooks = Directory.GetFiles(Path.Combine(root, "notebooks"), "*.ipynb").Order().ToList();
        Assert.NotEmpty(notebooks);

        var output = new StringWriter();
        var errors = new StringWriter();
        string previous = Directory.GetCurrentDirectory();
        try
        {
            Directory.SetCurrentDirectory(root);
            int exit = Commands.Run(["walkthrough", "--profile", "smoke", "--out", temp.Path], output, errors);
            Assert.True(exit == 0, $"walkthrough failed:\n{errors}\n{output}");
        }
        finally
        {
            Directory.SetCurrentDirectory(previous);
        }
        Assert.Contains("profile smoke", output.ToString());
        Assert.True(File.Exists(Path.Combine(temp.Path, "site", "index.html")));
        foreach (string notebook in notebooks)
        {
            string name = Path.GetFileName(notebook);
            var executed = JsonNode.Parse(File.ReadAllText(Path.Combine(temp.Path, "notebooks", name)))!;
            var codeCells = executed["cells"]!.AsArray().Where(c => c!["cell_type"]!.GetValue<string>() == "code").ToList();
            Assert.Equal(Enumerable.Range(1, codeCells.Count), codeCells.Select(c => c!["execution_count"]!.GetValue<int>()));
            Assert.True(File.Exists(Path.Combine(temp.Path, "site", Path.ChangeExtension(name, ".html"))), name);
        }
    }
}
