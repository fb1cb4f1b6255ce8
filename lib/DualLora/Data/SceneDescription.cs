using System.Globalization;
using static DualLora.Data.ClothingVocabulary;

namespace DualLora.Data;

/// <summary>
/// The generic task the small base model is pretrained on, apart from the suite's seven tasks
/// (<see cref="SceneTasks.All"/>): one instruction, "Describe the picture.", answered with every fact of the
/// scene, field by field in a fixed order, each field "key: value." —
/// <c>top left: sneaker, footwear, feet. top right: no item. bottom left: bag, accessory, hand. bottom right: no item.
/// items: sneaker, bag. top items: 0. footwear items: 2. full: no.</c>
/// <para>
/// Every word the seven tasks answer with is written here as those answers tokenize it: each item's name
/// with a comma after it (the cells and inner list items, as the lists write them) and bare (the last item),
/// its group and body part, the counts 0 to 4 (how many tops and how much footwear) and yes or no (whether
/// all four cells hold an item). So a decoder pretrained on it, then frozen, can already write every
/// answer, and the adapters only have to learn which one an instruction asks for.
/// </para>
/// </summary>
public static class SceneDescription
{
    /// <summary>The sample's <c>task</c> field.</summary>
    public const string TaskName = "description";

    public const string Instruction = "Describe the picture.";

    /// <summary>What an empty cell's field says.</summary>
    public const string NoItem = "no item";

    /// <summary>The fields' keys in the order the description writes them: the four cells, then the list, the counts and whether it is full.</summary>
    public static readonly IReadOnlyList<string> FieldNames =
        [.. FashionScene.PositionNames, "items", $"{Top} items", $"{Footwear} items", "full"];

    /// <summary>The scene's fields, in the order of <see cref="FieldNames"/>.</summary>
    public static IReadOnlyList<(string Name, string Value)> Fields(FashionScene scene)
    {
        var fields = new List<(string, string)>();
        for (int cell = 0; cell < FashionScene.CellCount; cell++)
        {
            string value = scene.Cells[cell] is { } item ? $"{Names[item.Label]}, {Groups[item.Label]}, {BodyParts[item.Label]}" : NoItem;
            fields.Add((FashionScene.PositionNames[cell], value));
        }
        fields.Add((FieldNames[4], string.Join(", ", scene.Items.Select(item => Names[item.Label]))));
        fields.Add((FieldNames[5], Count(scene, Top)));
        fields.Add((FieldNames[6], Count(scene, Footwear)));
        fields.Add((FieldNames[7], scene.Items.Count() == FashionScene.CellCount ? "yes" : "no"));
        return fields;
    }

    /// <summary>The description: each field as "key: value.", separated by spaces.</summary>
    public static string Describe(FashionScene scene) => string.Join(" ", Fields(scene).Select(f => $"{f.Name}: {f.Value}."));

    /// <summary>
    /// Reads a description back into its fields by key (the inverse of <see cref="Describe"/>); text that is not a
    /// "key: value" field (as a model's wrong output may be) is skipped, and a repeated key keeps its first value.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Parse(string description)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string part in (description.Trim() + " ").Split(". ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int colon = part.IndexOf(": ", StringComparison.Ordinal);
            if (colon > 0) fields.TryAdd(part[..colon], part[(colon + 2)..].TrimEnd('.'));
        }
        return fields;
    }

    /// <summary>The share of <see cref="FieldNames"/> whose value in <paramref name="prediction"/> equals the reference's.</summary>
    public static double FieldAccuracy(string prediction, string reference)
    {
        var predicted = Parse(prediction);
        var expected = Parse(reference);
        return FieldNames.Count(name => predicted.TryGetValue(name, out var value) && expected.TryGetValue(name, out var right) && value == right)
            / (double)FieldNames.Count;
    }

    /// <summary>
    /// One description sample per scene of a split, ids <c>{split}-{scene:D5}-description</c>, so they never clash
    /// with the suite's own samples of the same scenes.
    /// </summary>
    public static IReadOnlyList<SceneSample> Samples(SceneSuite suite, SceneSplit split) =>
        suite.Scenes(split).Select((scene, i) => new SceneSample($"{SceneSuite.SplitName(split)}-{i:D5}-{TaskName}", split, i, TaskName, 0, Instruction, Describe(scene)))
            .ToList();

    static string Count(FashionScene scene, string group) =>
        scene.Items.Count(item => Groups[item.Label] == group).ToString(CultureInfo.InvariantCulture);
}
