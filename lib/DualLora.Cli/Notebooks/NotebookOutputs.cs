using System.Text;
using System.Text.Json.Nodes;
using Microsoft.DotNet.Interactive.Formatting;

namespace DualLora.Cli.Notebooks;

/// <summary>
/// One cell's outputs in nbformat 4 form, built from the kernel's events in the order they happened:
/// console text as "stream" outputs (consecutive writes to one stream joined, as Jupyter does), displayed
/// values as "display_data", the return value as "execute_result". An update replaces the output with its
/// display id in place, as Jupyter's update_display_data does, so a progress display updated a thousand
/// times stays one output; an update whose id no output has becomes a new output, as VS Code shows it, which
/// its later updates replace. Text is stored as a list of lines; image/png stays one base64 string.
/// </summary>
sealed class NotebookOutputs
{
    readonly List<JsonObject> items = [];
    readonly Dictionary<string, JsonObject> displaysById = [];

    public IReadOnlyList<JsonObject> Items => items;

    public void AppendStream(string name, IReadOnlyCollection<FormattedValue> values)
    {
        string text = string.Concat(values.Where(v => v.MimeType == "text/plain").Select(v => v.Value));
        if (text.Length == 0) return;
        if (items.Count > 0 && items[^1]["output_type"]!.GetValue<string>() == "stream" && items[^1]["name"]!.GetValue<string>() == name)
        {
            var joined = new StringBuilder(string.Concat(items[^1]["text"]!.AsArray().Select(l => l!.GetValue<string>()))).Append(text);
            items[^1]["text"] = NotebookDocument.Lines(joined.ToString());
        }
        else
        {
            items.Add(new JsonObject { ["output_type"] = "stream", ["name"] = name, ["text"] = NotebookDocument.Lines(text) });
        }
    }

    public void AppendDisplay(string? valueId, IReadOnlyCollection<FormattedValue> values)
    {
        var output = new JsonObject { ["output_type"] = "display_data", ["data"] = Bundle(values), ["metadata"] = new JsonObject() };
        items.Add(output);
        if (valueId != null) displaysById[valueId] = output;
    }

    public void UpdateDisplay(string? valueId, IReadOnlyCollection<FormattedValue> values)
    {
        if (valueId != null && displaysById.TryGetValue(valueId, out var output)) output["data"] = Bundle(values);
        else AppendDisplay(valueId, values);
    }

    public void AppendResult(IReadOnlyCollection<FormattedValue> values, int executionCount) =>
        items.Add(new JsonObject
        {
            ["output_type"] = "execute_result", ["execution_count"] = executionCount,
            ["data"] = Bundle(values), ["metadata"] = new JsonObject(),
        });

    static JsonObject Bundle(IReadOnlyCollection<FormattedValue> values)
    {
        var data = new JsonObject();
        foreach (var value in values)
            data[value.MimeType] = value.MimeType.StartsWith("image/", StringComparison.Ordinal) && value.MimeType != "image/svg+xml"
                ? value.Value
                : NotebookDocument.Lines(value.Value);
        return data;
    }
}
