using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.IO;

namespace DualLora.Cli.Notebooks;

/// <summary>A notebook cell: its kind, its source, and (for code cells) the outputs of the last run.</summary>
public sealed class NotebookCell
{
    internal NotebookCell(JsonObject json, int number, string kind, string source)
    {
        Json = json; Number = number; Kind = kind; Source = source;
    }

    internal JsonObject Json { get; }
    /// <summary>1-based position among all cells, as a reader counts them.</summary>
    public int Number { get; }
    /// <summary>"code", "markdown" or "raw".</summary>
    public string Kind { get; }
    public string Source { get; }
    public bool IsCode => Kind == "code";
    public JsonArray Outputs => Json["outputs"] as JsonArray ?? throw new InvalidOperationException("not a code cell");
}

/// <summary>
/// A Jupyter notebook (nbformat 4) holding C# for the .NET Interactive kernel, read and written as JSON so
/// that metadata the project does not know is kept as it was. Loading validates the structure and names
/// the file and the cell at fault.
/// </summary>
public sealed class NotebookDocument
{
    readonly JsonObject root;

    public string Path { get; }
    public IReadOnlyList<NotebookCell> Cells { get; }

    NotebookDocument(string path, JsonObject root, List<NotebookCell> cells)
    {
        Path = path; this.root = root; Cells = cells;
    }

    public static NotebookDocument Load(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full)) throw new NotebookFormatException(full, "the file does not exist.");
        JsonNode? parsed;
        try
        {
            parsed = DualLora.IO.StrictJson.ReadFile(full);
        }
        catch (DualLora.IO.InvalidFileException e)
        {
            throw new NotebookFormatException(full, e.Fault);
        }
        if (parsed is not JsonObject root) throw new NotebookFormatException(full, "the top level must be a JSON object.");
        if (root["nbformat"] is not JsonValue format || !format.TryGetValue(out int major) || major != 4)
            throw new NotebookFormatException(full, "'nbformat' must be 4 (Jupyter notebook format 4).");
        if (root["cells"] is not JsonArray cellsJson) throw new NotebookFormatException(full, "'cells' is missing or not an array.");

        var metadata = Member<JsonObject>(full, root, "metadata", "an object");
        var kernelspec = metadata is null ? null : Member<JsonObject>(full, metadata, "kernelspec", "an object", "metadata.");
        string? kernel = kernelspec is null ? null : Text(full, kernelspec, "name", "metadata.kernelspec.");
        if (kernel != ".net-csharp")
            throw new NotebookFormatException(full, $"metadata.kernelspec.name is '{kernel ?? "(missing)"}'; this runner executes .NET Interactive C# notebooks ('.net-csharp').");

        var cells = new List<NotebookCell>();
        for (int i = 0; i < cellsJson.Count; i++)
        {
            int number = i + 1;
            if (cellsJson[i] is not JsonObject cell) throw new NotebookFormatException(full, $"cell {number} is not a JSON object.");
            string? kind = cell["cell_type"] is JsonValue k && k.TryGetValue(out string? s) ? s : null;
            if (kind is not ("code" or "markdown" or "raw"))
                throw new NotebookFormatException(full, $"cell {number} has cell_type '{kind ?? "(missing)"}'; expected code, markdown or raw.");
            string source = ReadSource(full, number, cell["source"]);
            if (kind == "code")
            {
                string where = $"cell {number}: metadata.";
                var cellMetadata = Member<JsonObject>(full, cell, "metadata", "an object", $"cell {number}: ");
                var polyglot = cellMetadata is null ? null : Member<JsonObject>(full, cellMetadata, "polyglot_notebook", "an object", where);
                string language = (polyglot is null ? null : Text(full, polyglot, "kernelName", where + "polyglot_notebook.")) ?? "csharp";
                if (language != "csharp")
                    throw new NotebookFormatException(full, $"cell {number} is for the '{language}' kernel; only C# cells can be executed.");
                if (cell["outputs"] is not JsonArray) cell["outputs"] = new JsonArray();
            }
            cells.Add(new NotebookCell(cell, number, kind, source));
        }
        return new NotebookDocument(full, root, cells);
    }

    /// <summary>An optional member of a JSON object: absent or null is null, the wrong JSON type an error naming the field.</summary>
    static T? Member<T>(string file, JsonObject parent, string name, string what, string path = "") where T : JsonNode =>
        parent[name] switch
        {
            null => null,
            T value => value,
            var other => throw new NotebookFormatException(file, $"{path}{name} must be {what}, not {other.GetValueKind().ToString().ToLowerInvariant()}."),
        };

    static string? Text(string file, JsonObject parent, string name, string path) =>
        Member<JsonValue>(file, parent, name, "a string", path) is { } value
            ? value.TryGetValue(out string? text) ? text : throw new NotebookFormatException(file, $"{path}{name} must be a string, not {value.GetValueKind().ToString().ToLowerInvariant()}.")
            : null;

    static string ReadSource(string file, int number, JsonNode? source) => source switch
    {
        JsonValue value when value.TryGetValue(out string? text) => text,
        JsonArray lines when lines.All(l => l is JsonValue v && v.TryGetValue(out string? _)) => string.Concat(lines.Select(l => l!.GetValue<string>())),
        _ => throw new NotebookFormatException(file, $"cell {number} has no 'source', or it is neither a string nor an array of strings."),
    };

    /// <summary>Sets a code cell's execution count and outputs (replacing those of an earlier run).</summary>
    public static void SetResult(NotebookCell cell, int executionCount, IEnumerable<JsonObject> outputs)
    {
        cell.Json["execution_count"] = executionCount;
        cell.Json["outputs"] = new JsonArray(outputs.Select(o => (JsonNode)o).ToArray());
    }

    /// <summary>Writes the notebook (atomically) with the .NET Interactive C# kernel metadata in place.</summary>
    public void Save(string path)
    {
        EnsureKernelMetadata();
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        AtomicFile.WriteAllText(path, root.ToJsonString(options) + "\n");
    }

    void EnsureKernelMetadata()
    {
        var metadata = root["metadata"] as JsonObject ?? new JsonObject();
        root["metadata"] = metadata;
        metadata["kernelspec"] = new JsonObject { ["display_name"] = ".NET (C#)", ["language"] = "C#", ["name"] = ".net-csharp" };
        metadata["language_info"] ??= new JsonObject { ["name"] = "polyglot-notebook" };
        metadata["polyglot_notebook"] ??= new JsonObject
        {
            ["kernelInfo"] = new JsonObject
            {
                ["defaultKernelName"] = "csharp",
                ["items"] = new JsonArray(new JsonObject { ["aliases"] = new JsonArray(), ["name"] = "csharp" }),
            },
        };
        root["nbformat_minor"] ??= 4;
    }

    /// <summary>Splits text into the list-of-lines form Jupyter uses for sources and outputs.</summary>
    public static JsonArray Lines(string text)
    {
        var lines = new JsonArray();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
            if (text[i] == '\n') { lines.Add(text[start..(i + 1)]); start = i + 1; }
        if (start < text.Length) lines.Add(text[start..]);
        return lines;
    }
}

/// <summary>A notebook file that is not a valid .NET Interactive C# notebook.</summary>
public sealed class NotebookFormatException(string file, string fault) : DualLora.IO.InvalidFileException(file, fault);
