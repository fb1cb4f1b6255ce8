using System.Text.Json;
using DualLora.IO;

namespace DualLora.Tests.IO;

public class JsonObjectReaderTests
{
    const string Good = """
        {
          "name": "tiny", "steps": 12, "seed": 9007199254740993, "rate": 0.25, "shuffle": true, "mode": "fast",
          "tags": ["a", "b"], "ranks": [4, 8], "nested": { "depth": 3 },
          "items": [ { "from": "human" }, { "from": "gpt" } ],
          "task": "count", "empty": null
        }
        """;

    static string Write(TempFolder temp, string json, string name = "config.json")
    {
        string path = temp.File(name);
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void A_good_object_reads_every_type()
    {
        using var temp = new TempFolder();
        var reader = JsonObjectReader.ReadFile(Write(temp, Good));
        Assert.Equal("tiny", reader.String("name"));
        Assert.Equal(12, reader.Int("steps", 1, 100));
        Assert.Equal(9007199254740993L, reader.Long("seed"));   // beyond a double's exact integers
        Assert.Equal(0.25, reader.Double("rate"));
        Assert.True(reader.Bool("shuffle"));
        Assert.Equal(2, reader.Choice("mode", new Dictionary<string, int> { ["slow"] = 1, ["fast"] = 2 }));
        Assert.Equal(["a", "b"], reader.StringList("tags"));
        Assert.Equal([4, 8], reader.OptionalIntList("ranks")!);
        var nested = reader.Object("nested");
        Assert.Equal("nested", nested.Path);
        Assert.Equal(3, nested.Int("depth"));
        var items = reader.Objects("items");
        Assert.Equal(["items[0]", "items[1]"], items.Select(i => i.Path));
        Assert.Equal(["human", "gpt"], items.Select(i => i.Choice("from", "human", "gpt")));
        Assert.Equal(JsonValueKind.Null, reader.Kind("empty"));

        Assert.Null(reader.OptionalString("empty"));     // null counts as absent
        Assert.Null(reader.OptionalInt("absent"));
        Assert.Null(reader.OptionalDouble("absent"));
        Assert.Null(reader.OptionalBool("absent"));
        Assert.Null(reader.OptionalObject("absent"));
        Assert.Null(reader.OptionalStringList("absent"));
        Assert.Equal(JsonValueKind.Undefined, reader.Kind("absent"));

        var extra = Assert.Single(reader.UnreadFields());
        Assert.Equal("task", extra.Key);
        Assert.Equal("count", extra.Value!.GetValue<string>());
        reader.RejectUnknownFields("task");
    }

    [Fact]
    public void A_list_file_gives_each_element_its_index_in_the_path()
    {
        using var temp = new TempFolder();
        string path = Write(temp, """[ { "id": "a", "conversations": [] }, { "id": "b", "conversations": [ { "from": "human" }, { "from": "robot" } ] } ]""");
        var samples = JsonObjectReader.ReadListFile(path);
        Assert.Equal(["[0]", "[1]"], samples.Select(s => s.Path));
        Assert.Empty(samples[0].Objects("conversations"));
        var turns = samples[1].Objects("conversations");
        Assert.Equal("human", turns[0].Choice("from", "human", "gpt"));
        var error = Assert.Throws<InvalidFileException>(() => turns[1].Choice("from", "human", "gpt"));
        Assert.Equal($"{path}: field '[1].conversations[1].from' is \"robot\"; allowed values: \"human\", \"gpt\".", error.Message);

        string notObjects = Write(temp, """[ { "id": "a" }, 3 ]""", "list.json");
        Assert.Equal($"{notObjects}: field '[1]' is 3; it must be a JSON object, not number.",
            Assert.Throws<InvalidFileException>(() => JsonObjectReader.ReadListFile(notObjects)).Message);
        Assert.Contains("the top level must be a JSON array of objects", Assert.Throws<InvalidFileException>(() => JsonObjectReader.ReadListFile(Write(temp, "{}", "object.json"))).Message);
    }

    public static TheoryData<string, Action<JsonObjectReader>, string> Faults => new()
    {
        { """{ "data": {} }""", r => r.Object("data").String("runs"), "field 'data.runs' is missing." },
        { """{ "steps": "12" }""", r => r.Int("steps"), "field 'steps' is \"12\"; it must be a JSON number, not string." },
        { """{ "steps": null }""", r => r.Int("steps"), "field 'steps' is null; it must be a JSON number, not null." },
        { """{ "on": 1 }""", r => r.OptionalBool("on"), "field 'on' is 1; it must be a JSON boolean, not number." },
        { """{ "d": { "e": [] } }""", r => r.Object("d").Object("e"), "field 'd.e' is []; it must be a JSON object, not array." },
        { """{ "tags": ["a", 2] }""", r => r.StringList("tags"), "field 'tags[1]' is 2; it must be a JSON string, not number." },
        { """{ "ranks": [4, -1] }""", r => r.OptionalIntList("ranks", min: 1), "field 'ranks[1]' is -1; allowed values: whole numbers from 1 to 2147483647." },
        { """{ "steps": 0 }""", r => r.Int("steps", 1, 100), "field 'steps' is 0; allowed values: whole numbers from 1 to 100." },
        { """{ "steps": 1.5 }""", r => r.OptionalInt("steps"), "field 'steps' is 1.5; allowed values: whole numbers from -2147483648 to 2147483647." },
        { """{ "mode": "warp" }""", r => r.Choice("mode", "slow", "fast"), "field 'mode' is \"warp\"; allowed values: \"slow\", \"fast\"." },
        { """{ "a": { "x": 1, "y": 2 } }""", r => r.Object("a").RejectUnknownFields("x"), "unknown field 'a.y'; allowed keys: a.x." },
        { """{ "a": 1, "b": 2 }""", r => { r.Int("a"); r.RejectUnknownFields(); }, "unknown field 'b'; allowed keys: a." },
        { """{ "items": [ {}, { "from": 3 } ] }""", r => r.Objects("items")[1].String("from"), "field 'items[1].from' is 3; it must be a JSON string, not number." },
    };

    [Theory]
    [MemberData(nameof(Faults))]
    public void Each_fault_names_the_file_the_field_path_and_the_fault(string json, Action<JsonObjectReader> read, string expected)
    {
        using var temp = new TempFolder();
        string path = Write(temp, json);
        var error = Assert.Throws<InvalidFileException>(() => read(JsonObjectReader.ReadFile(path)));
        Assert.Equal($"{path}: {expected}", error.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_JSON_object_is_named_with_its_fault()
    {
        using var temp = new TempFolder();
        string broken = Write(temp, """{ "a": 1, }""");
        Assert.StartsWith($"{broken}: not valid JSON (", Assert.Throws<InvalidFileException>(() => JsonObjectReader.ReadFile(broken)).Message);
        string list = Write(temp, "[]", "list.json");
        Assert.Equal($"{list}: the top level must be a JSON object.", Assert.Throws<InvalidFileException>(() => JsonObjectReader.ReadFile(list)).Message);

        string commented = Write(temp, "// the seed\n{ \"seed\": 1 }", "commented.json");
        Assert.Contains("not valid JSON", Assert.Throws<InvalidFileException>(() => JsonObjectReader.ReadFile(commented)).Message);
        Assert.Equal(1, JsonObjectReader.ReadFile(commented, allowComments: true).Int("seed"));
    }
}
