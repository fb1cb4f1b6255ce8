using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DualLora.IO;

/// <summary>
/// Reads a JSON object of a file field by field (strict JSON, <see cref="StrictJson"/>). Every error is an <see cref="InvalidFileException"/> that
/// names the file, the field with its path from the top of the file (<c>data.runs</c>,
/// <c>[3].conversations[2].from</c>) and the fault: missing, the wrong JSON type, not one of the allowed
/// values (listed), out of range, or unknown. A JSON <c>null</c> counts as absent for optional fields, as
/// PEFT and Hugging Face write nulls for unset options.
/// <para>
/// The reader remembers which fields were asked for (present or not), so that
/// <see cref="RejectUnknownFields"/> can refuse the rest, or <see cref="UnreadFields"/> can keep them.
/// </para>
/// </summary>
public sealed class JsonObjectReader
{
    /// <summary>The file the object was read from, as errors name it.</summary>
    public string File { get; }

    /// <summary>The object's path from the top of the file: empty for the top level, else e.g. <c>data</c> or <c>[3].conversations[2]</c>.</summary>
    public string Path { get; }

    readonly JsonObject json;
    readonly List<string> asked = [];

    public JsonObjectReader(string file, string path, JsonObject json)
    {
        File = file;
        Path = path;
        this.json = json;
    }

    /// <summary>Reads a file whose top level is a JSON object.</summary>
    public static JsonObjectReader ReadFile(string file, bool allowComments = false) =>
        Parse(file, allowComments) is JsonObject obj ? new JsonObjectReader(file, "", obj)
            : throw new InvalidFileException(file, $"the top level must be a JSON object.");

    /// <summary>Reads a file whose top level is a JSON array of objects (LLaVA's instruction data); element <c>i</c> has the path <c>[i]</c>.</summary>
    public static IReadOnlyList<JsonObjectReader> ReadListFile(string file, bool allowComments = false) =>
        Parse(file, allowComments) is JsonArray list ? Elements(file, "", list)
            : throw new InvalidFileException(file, $"the top level must be a JSON array of objects.");

    static JsonNode? Parse(string file, bool allowComments) => StrictJson.ReadFile(file, allowComments);

    static List<JsonObjectReader> Elements(string file, string path, JsonArray list) =>
        list.Select((element, i) => element is JsonObject obj ? new JsonObjectReader(file, $"{path}[{i}]", obj)
            : throw new InvalidFileException(file, $"field '{path}[{i}]' is {Shown(element)}; it must be a JSON object, not {KindName(element)}.")).ToList();

    /// <summary>The names of all fields the object has, in file order.</summary>
    public IEnumerable<string> Names => json.Select(p => p.Key);

    /// <summary>The path of a field of this object, as errors name it.</summary>
    public string FieldPath(string name) => Path.Length == 0 ? name : $"{Path}.{name}";

    /// <summary>An error about this object's file that is not about one field.</summary>
    public InvalidFileException Error(string fault) => new(File, fault);

    /// <summary>An error about a field: <c>file: field 'path' fault</c>, e.g. a fault of <c>is "x"; ...</c>.</summary>
    public InvalidFileException FieldError(string name, string fault) => new(File, $"field '{FieldPath(name)}' {fault}");

    /// <summary>The JSON kind of a field, <see cref="JsonValueKind.Undefined"/> when it is absent, for fields that may take more than one form.</summary>
    public JsonValueKind Kind(string name)
    {
        Ask(name);
        return json.TryGetPropertyValue(name, out var node) ? KindOf(node) : JsonValueKind.Undefined;
    }

    public string String(string name) => Get(name, JsonValueKind.String).GetValue<string>();
    public string? OptionalString(string name) => Find(name, JsonValueKind.String)?.GetValue<string>();

    public bool Bool(string name) => Get(name, JsonValueKind.True).GetValue<bool>();
    public bool? OptionalBool(string name) => Find(name, JsonValueKind.True)?.GetValue<bool>();

    public double Double(string name) => AsDouble(name, Get(name, JsonValueKind.Number));
    public double? OptionalDouble(string name) => Find(name, JsonValueKind.Number) is { } node ? AsDouble(name, node) : null;

    public long Long(string name, long min = long.MinValue, long max = long.MaxValue) => AsWhole(name, Get(name, JsonValueKind.Number), min, max);
    public long? OptionalLong(string name, long min = long.MinValue, long max = long.MaxValue) =>
        Find(name, JsonValueKind.Number) is { } node ? AsWhole(name, node, min, max) : null;

    public int Int(string name, int min = int.MinValue, int max = int.MaxValue) => (int)Long(name, min, max);
    public int? OptionalInt(string name, int min = int.MinValue, int max = int.MaxValue) => (int?)OptionalLong(name, min, max);

    /// <summary>A string field that must be one of <paramref name="allowed"/>'s keys; returns the value it maps to.</summary>
    public T Choice<T>(string name, IReadOnlyDictionary<string, T> allowed) => AsChoice(name, String(name), allowed);
    public T? OptionalChoice<T>(string name, IReadOnlyDictionary<string, T> allowed) where T : struct =>
        OptionalString(name) is { } value ? AsChoice(name, value, allowed) : null;

    /// <summary>A string field that must be one of <paramref name="allowed"/>.</summary>
    public string Choice(string name, params string[] allowed) => Choice(name, allowed.ToDictionary(a => a, a => a));

    public IReadOnlyList<string> StringList(string name) => ListOf(name, Get(name, JsonValueKind.Array).AsArray(), JsonValueKind.String, n => n!.GetValue<string>());
    public IReadOnlyList<string>? OptionalStringList(string name) =>
        Find(name, JsonValueKind.Array) is { } node ? ListOf(name, node.AsArray(), JsonValueKind.String, n => n!.GetValue<string>()) : null;

    public IReadOnlyList<int>? OptionalIntList(string name, int min = int.MinValue, int max = int.MaxValue) =>
        Find(name, JsonValueKind.Array) is { } node
            ? ListOf(name, node.AsArray(), JsonValueKind.Number, (n, i) => (int)AsWhole($"{name}[{i}]", n!, min, max)) : null;

    public IReadOnlyList<long> LongList(string name, long min = long.MinValue, long max = long.MaxValue) =>
        ListOf(name, Get(name, JsonValueKind.Array).AsArray(), JsonValueKind.Number, (n, i) => AsWhole($"{name}[{i}]", n!, min, max));

    public IReadOnlyList<double> DoubleList(string name) =>
        ListOf(name, Get(name, JsonValueKind.Array).AsArray(), JsonValueKind.Number, (n, i) => AsDouble($"{name}[{i}]", n!));

    public IReadOnlyList<bool> BoolList(string name) =>
        ListOf(name, Get(name, JsonValueKind.Array).AsArray(), JsonValueKind.True, n => n!.GetValue<bool>());

    /// <summary>A nested object, read with the same file and its path extended by the field's name.</summary>
    public JsonObjectReader Object(string name) => new(File, FieldPath(name), Get(name, JsonValueKind.Object).AsObject());
    public JsonObjectReader? OptionalObject(string name) =>
        Find(name, JsonValueKind.Object) is { } node ? new JsonObjectReader(File, FieldPath(name), node.AsObject()) : null;

    /// <summary>An array of objects; element <c>i</c> is read with the path <c>name[i]</c>.</summary>
    /// <summary>This object as JSON, detached from the file's tree (to keep it whole, as a config saved with a checkpoint).</summary>
    public JsonObject Copy() => json.DeepClone().AsObject();

    public IReadOnlyList<JsonObjectReader> Objects(string name) => Elements(File, FieldPath(name), Get(name, JsonValueKind.Array).AsArray());

    /// <summary>The fields not asked for so far, in file order: the extra fields a format keeps (a "task" field of a sample, say).</summary>
    public IReadOnlyList<KeyValuePair<string, JsonNode?>> UnreadFields() => json.Where(p => !asked.Contains(p.Key)).ToList();

    /// <summary>
    /// Fails on the first field that was neither asked for nor is in <paramref name="alsoAllowed"/>, listing
    /// the allowed ones: call it after reading, or before with every allowed name.
    /// </summary>
    public void RejectUnknownFields(params string[] alsoAllowed)
    {
        var allowed = asked.Concat(alsoAllowed).Distinct().ToList();
        foreach (var (name, _) in json)
            if (!allowed.Contains(name))
                throw new InvalidFileException(File, $"unknown field '{FieldPath(name)}'; allowed keys: {string.Join(", ", allowed.Select(FieldPath))}.");
    }

    void Ask(string name)
    {
        if (!asked.Contains(name)) asked.Add(name);
    }

    JsonNode Get(string name, JsonValueKind kind)
    {
        Ask(name);
        if (!json.TryGetPropertyValue(name, out var node)) throw FieldError(name, "is missing.");
        return Checked(FieldPath(name), node, kind);
    }

    JsonNode? Find(string name, JsonValueKind kind)
    {
        Ask(name);
        return json[name] is { } node ? Checked(FieldPath(name), node, kind) : null;
    }

    JsonNode Checked(string path, JsonNode? node, JsonValueKind kind)
    {
        var actual = KindOf(node);
        bool fits = actual == kind || (kind == JsonValueKind.True && actual == JsonValueKind.False);
        return fits ? node! : throw new InvalidFileException(File, $"field '{path}' is {Shown(node)}; it must be a JSON {KindName(kind)}, not {KindName(actual)}.");
    }

    List<T> ListOf<T>(string name, JsonArray list, JsonValueKind kind, Func<JsonNode?, T> read) => ListOf(name, list, kind, (n, _) => read(n));

    List<T> ListOf<T>(string name, JsonArray list, JsonValueKind kind, Func<JsonNode?, int, T> read) =>
        list.Select((element, i) => read(Checked($"{FieldPath(name)}[{i}]", element, kind), i)).ToList();

    double AsDouble(string name, JsonNode node) =>
        double.TryParse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value) ? value
            : throw FieldError(name, $"is {Shown(node)}; it must be a finite number.");

    /// <summary><paramref name="name"/> may already carry an element index (<c>expert_ranks[1]</c>).</summary>
    long AsWhole(string name, JsonNode node, long min, long max) =>
        long.TryParse(node.ToJsonString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value) && value >= min && value <= max ? value
            : throw FieldError(name, $"is {Shown(node)}; allowed values: whole numbers from {min} to {max}.");

    T AsChoice<T>(string name, string value, IReadOnlyDictionary<string, T> allowed) =>
        allowed.TryGetValue(value, out var choice) ? choice
            : throw FieldError(name, $"is {Shown(JsonValue.Create(value))}; allowed values: {string.Join(", ", allowed.Keys.Select(k => Shown(JsonValue.Create(k))))}.");

    static readonly JsonSerializerOptions Readable = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A value as the file spells it, cut short when long (a whole object, say).</summary>
    static string Shown(JsonNode? node)
    {
        string text = node?.ToJsonString(Readable) ?? "null";
        return text.Length <= 80 ? text : text[..77] + "...";
    }

    static JsonValueKind KindOf(JsonNode? node) => node?.GetValueKind() ?? JsonValueKind.Null;

    static string KindName(JsonNode? node) => KindName(KindOf(node));

    static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };
}
