using System.Text;
using System.Text.Json.Nodes;
using Microsoft.DotNet.Interactive.Formatting;

namespace DualLora.Cli.Notebooks;

/// <summary>
/// The outputs of one cell in the order they happened: console text as "stream" outputs, displayed values
/// as "display_data", the trailing expression as "execute_result". Values are rendered through
/// Microsoft.DotNet.Interactive.Formatting, as the .NET Interactive kernel renders them.
/// </summary>
public sealed class CellOutputs
{
    // Console text is collected per stream run and split into lines once, when the outputs are read.
    readonly List<object> outputs = [];
    readonly object gate = new();

    sealed record StreamText(string Name, StringBuilder Text);

    public IReadOnlyList<JsonObject> Items
    {
        get
        {
            lock (gate)
                return outputs.Select(o => o is StreamText stream
                    ? new JsonObject { ["output_type"] = "stream", ["name"] = stream.Name, ["text"] = NotebookDocument.Lines(stream.Text.ToString()) }
                    : (JsonObject)((JsonObject)o).DeepClone()).ToList();
        }
    }

    public void AppendStream(string name, string text)
    {
        if (text.Length == 0) return;
        lock (gate)
        {
            // Consecutive writes to the same stream become one output, as in Jupyter.
            if (outputs.Count > 0 && outputs[^1] is StreamText last && last.Name == name) last.Text.Append(text);
            else outputs.Add(new StreamText(name, new StringBuilder(text)));
        }
    }

    public void AppendDisplay(object? value, string[] mimeTypes)
    {
        var output = new JsonObject { ["output_type"] = "display_data", ["data"] = Bundle(value, mimeTypes), ["metadata"] = new JsonObject() };
        lock (gate) outputs.Add(output);
    }

    public void AppendResult(object? value, int executionCount)
    {
        var output = new JsonObject
        {
            ["output_type"] = "execute_result", ["execution_count"] = executionCount,
            ["data"] = Bundle(value, []), ["metadata"] = new JsonObject(),
        };
        lock (gate) outputs.Add(output);
    }

    /// <summary>
    /// A MIME bundle: the formatter's preferred types for the value (or those asked for), plus text/plain so
    /// that every output has a plain form. image/png is stored as base64, as nbformat requires.
    /// </summary>
    static JsonObject Bundle(object? value, string[] mimeTypes)
    {
        var types = (mimeTypes.Length > 0 ? mimeTypes
            : value == null ? ["text/plain"] : Formatter.GetPreferredMimeTypesFor(value.GetType()).ToArray()).ToList();
        if (!types.Contains("text/plain")) types.Add("text/plain");
        var data = new JsonObject();
        foreach (string type in types)
        {
            string text = value == null ? Formatter.NullString : value.ToDisplayString(type);
            data[type] = type == "image/png" ? text : NotebookDocument.Lines(text);
        }
        return data;
    }
}

/// <summary>Console text written while a cell runs, sent to that cell's outputs.</summary>
sealed class CellConsoleWriter(Func<CellOutputs?> current, string stream) : TextWriter
{
    public override Encoding Encoding => Encoding.UTF8;
    public override void Write(char value) => current()?.AppendStream(stream, value.ToString());
    public override void Write(string? value) => current()?.AppendStream(stream, value ?? "");
    public override void Write(char[] buffer, int index, int count) => current()?.AppendStream(stream, new string(buffer, index, count));
}
