using System.Globalization;
using static DualLora.Data.ClothingVocabulary;

namespace DualLora.Data;

/// <summary>
/// The generic tasks the small base model is pretrained on, apart from the suite's seven tasks
/// (<see cref="SceneTasks.All"/>). The description, "Describe the picture.", is answered with every fact of the
/// scene, field by field, each field "key: value." — the four cells in an order drawn per sample, then the list, the
/// counts and whether the scene is full:
/// <c>bottom left: bag, accessory, hand. top right: no item. top left: sneaker, footwear, feet. bottom right: no item.
/// items: sneaker, bag. top items: 0. footwear items: 2. full: no.</c>
/// The cell description, "Describe the item at the top left.", is answered with that one cell's value.
/// <para>
/// Why two tasks and a drawn order: a decoder that only ever wrote the cells in one fixed order could find each cell by
/// how far into the answer it is, and fine-tuning could not turn that into answering a question about a position (measured:
/// LoRA on the name task stayed at chance). With the order drawn and a cell asked for by name, the decoder has to read
/// the position's words to find the cell, which is what every position question of the suite needs.
/// </para>
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
    /// <summary>The description sample's <c>task</c> field.</summary>
    public const string TaskName = "description";

    public const string Instruction = "Describe the picture.";

    /// <summary>The cell description sample's <c>task</c> field.</summary>
    public const string CellTaskName = "cell";

    /// <summary>The cell description's instruction; {0} is the position's name (<see cref="FashionScene.PositionNames"/>).</summary>
    public const string CellInstruction = "Describe the item at the {0}.";

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
            fields.Add((FashionScene.PositionNames[cell], DescribeCell(scene, cell)));
        }
        fields.Add((FieldNames[4], string.Join(", ", scene.Items.Select(item => Names[item.Label]))));
        fields.Add((FieldNames[5], Count(scene, Top)));
        fields.Add((FieldNames[6], Count(scene, Footwear)));
        fields.Add((FieldNames[7], scene.Items.Count() == FashionScene.CellCount ? "yes" : "no"));
        return fields;
    }

    /// <summary>One cell's value: the item's name, group and body part, or <see cref="NoItem"/>.</summary>
    public static string DescribeCell(FashionScene scene, int cell) =>
        scene.Cells[cell] is { } item ? $"{Names[item.Label]}, {Groups[item.Label]}, {BodyParts[item.Label]}" : NoItem;

    /// <summary>
    /// The description: each field as "key: value.", separated by spaces; the four cells in <paramref name="cellOrder"/>
    /// (a permutation of 0 to 3; reading order when null), the other fields after them in their fixed order.
    /// </summary>
    public static string Describe(FashionScene scene, IReadOnlyList<int>? cellOrder = null)
    {
        var fields = Fields(scene);
        var order = cellOrder ?? Enumerable.Range(0, FashionScene.CellCount).ToList();
        if (order.Count != FashionScene.CellCount || order.Distinct().Count() != FashionScene.CellCount || order.Any(c => c < 0 || c >= FashionScene.CellCount))
            throw new ArgumentException($"the cell order must be a permutation of 0 to {FashionScene.CellCount - 1}, got [{string.Join(", ", order)}].", nameof(cellOrder));
        return string.Join(" ", order.Select(cell => fields[cell]).Concat(fields.Skip(FashionScene.CellCount)).Select(f => $"{f.Name}: {f.Value}."));
    }

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

    /// <summary>For each of <see cref="FieldNames"/>, in order: whether <paramref name="prediction"/> gives it the reference's value.</summary>
    public static bool[] FieldsRight(string prediction, string reference)
    {
        var predicted = Parse(prediction);
        var expected = Parse(reference);
        return FieldNames.Select(name => predicted.TryGetValue(name, out var value) && expected.TryGetValue(name, out var right) && value == right).ToArray();
    }

    /// <summary>The share of <see cref="FieldNames"/> whose value in <paramref name="prediction"/> equals the reference's.</summary>
    public static double FieldAccuracy(string prediction, string reference) =>
        FieldsRight(prediction, reference).Count(right => right) / (double)FieldNames.Count;

    /// <summary>
    /// Two samples per scene of a split: its description (cells in a drawn order), id <c>{split}-{scene:D5}-description</c>,
    /// then one drawn cell's description, id <c>{split}-{scene:D5}-cell</c>; the ids never clash with the suite's own samples
    /// of the same scenes. The draws are seeded by the suite's seed and the split and made scene after scene, so a suite with
    /// more scenes describes its first scenes as a smaller one does.
    /// </summary>
    public static IReadOnlyList<SceneSample> Samples(SceneSuite suite, SceneSplit split)
    {
        var random = new Random(unchecked(suite.Options.Seed * 8191 + (int)split + 1));
        var samples = new List<SceneSample>();
        foreach (var (scene, i) in suite.Scenes(split).Select((scene, i) => (scene, i)))
        {
            int[] order = Enumerable.Range(0, FashionScene.CellCount).ToArray();
            random.Shuffle(order);
            int cell = random.Next(FashionScene.CellCount);
            string prefix = $"{SceneSuite.SplitName(split)}-{i:D5}";
            samples.Add(new SceneSample($"{prefix}-{TaskName}", split, i, TaskName, 0, Instruction, Describe(scene, order)));
            samples.Add(new SceneSample($"{prefix}-{CellTaskName}", split, i, CellTaskName, 0,
                string.Format(CultureInfo.InvariantCulture, CellInstruction, FashionScene.PositionNames[cell]), DescribeCell(scene, cell)));
        }
        return samples;
    }

    static string Count(FashionScene scene, string group) =>
        scene.Items.Count(item => Groups[item.Label] == group).ToString(CultureInfo.InvariantCulture);
}
