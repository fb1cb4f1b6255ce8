using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;

namespace DualLora.Display;

/// <summary>
/// Rows shown as a plain table: one column per public property of the row type, in declaration order.
/// The notebook formatter's default for a list of objects is a nested tree; results read better flat.
/// </summary>
public sealed class Table
{
    public IReadOnlyList<string> Columns { get; }
    public IReadOnlyList<IReadOnlyList<string>> Rows { get; }

    Table(IReadOnlyList<string> columns, IReadOnlyList<IReadOnlyList<string>> rows) { Columns = columns; Rows = rows; }

    public static Table From<T>(IEnumerable<T> rows)
    {
        var properties = typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0).ToArray();
        var cells = rows.Select(row => (IReadOnlyList<string>)properties.Select(p => Cell(p.GetValue(row))).ToList()).ToList();
        return new Table(properties.Select(p => p.Name).ToList(), cells);
    }

    /// <summary>
    /// Rows whose columns are known only at run time (one per task, say): each row maps a column's name to its value;
    /// a column a row lacks is empty. A row naming a column not in <paramref name="columns"/> is an error, so nothing is dropped unseen.
    /// </summary>
    public static Table From(IReadOnlyList<string> columns, IEnumerable<IReadOnlyDictionary<string, object?>> rows)
    {
        var cells = rows.Select((row, i) =>
        {
            var unknown = row.Keys.Where(k => !columns.Contains(k)).ToList();
            if (unknown.Count > 0) throw new ArgumentException($"row {i} names column(s) {string.Join(", ", unknown)}, not among [{string.Join(", ", columns)}].", nameof(rows));
            return (IReadOnlyList<string>)columns.Select(c => Cell(row.GetValueOrDefault(c))).ToList();
        }).ToList();
        return new Table(columns.ToList(), cells);
    }

    static string Cell(object? value) => value switch
    {
        null => "",
        float f => f.ToString("G6", CultureInfo.InvariantCulture),
        double d => d.ToString("G6", CultureInfo.InvariantCulture),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    public string ToHtml()
    {
        var html = new StringBuilder("<table><thead><tr>");
        foreach (string column in Columns) html.Append($"<th>{WebUtility.HtmlEncode(column)}</th>");
        html.Append("</tr></thead><tbody>");
        foreach (var row in Rows)
        {
            html.Append("<tr>");
            foreach (string cell in row) html.Append($"<td>{WebUtility.HtmlEncode(cell)}</td>");
            html.Append("</tr>");
        }
        return html.Append("</tbody></table>").ToString();
    }

    public override string ToString()
    {
        var widths = Columns.Select((c, i) => Math.Max(c.Length, Rows.Select(r => r[i].Length).DefaultIfEmpty(0).Max())).ToArray();
        string Line(IReadOnlyList<string> cells) => string.Join("  ", cells.Select((c, i) => c.PadRight(widths[i]))).TrimEnd();
        return string.Join("\n", new[] { Line(Columns), string.Join("  ", widths.Select(w => new string('-', w))) }.Concat(Rows.Select(Line)));
    }
}
