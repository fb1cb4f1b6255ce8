using static DualLora.Data.ClothingVocabulary;

namespace DualLora.Data;

/// <summary>
/// The scene suite's tasks. They need different skills (locating, recognising, counting, checking
/// presence, ordering) and partly conflict: the item at one position is answered with its name, its group
/// or its body part depending on the instruction, and the same items are listed forwards or backwards.
/// Answers are short and deterministic.
/// </summary>
public static class SceneTasks
{
    public static readonly SceneTask NameAt = new("name", ["What is the item at the {0}?", "Name the {0} item."],
        (scene, random) => AtRandomItem(scene, random, label => Names[label]));

    public static readonly SceneTask GroupAt = new("group", ["Which group does the {0} item belong to?", "What kind of item is at the {0}?"],
        (scene, random) => AtRandomItem(scene, random, label => Groups[label]));

    public static readonly SceneTask BodyPartAt = new("body_part", ["Where is the {0} item worn?", "On which body part is the item at the {0} worn?"],
        (scene, random) => AtRandomItem(scene, random, label => BodyParts[label]));

    public static readonly SceneTask CountGroup = new("count", ["How many {0} items are there?", "Count the {0} items."],
        (scene, random) =>
        {
            string group = CountedGroups[random.Next(CountedGroups.Count)];
            return new(group, scene.Items.Count(item => Groups[item.Label] == group).ToString(System.Globalization.CultureInfo.InvariantCulture));
        });

    // Half the questions ask for a class in the scene, half for one that is not, so "yes" and "no" are about as common.
    public static readonly SceneTask Presence = new("presence", ["Is there a {0}?", "Does the picture show a {0}?"],
        (scene, random) =>
        {
            var present = scene.Items.Select(item => item.Label).Distinct().ToList();
            bool askPresent = random.Next(2) == 0;
            var candidates = askPresent ? present : Enumerable.Range(0, Names.Count).Except(present).ToList();
            return new(Names[candidates[random.Next(candidates.Count)]], askPresent ? "yes" : "no");
        });

    public static readonly SceneTask List = new("list", ["List the items in reading order.", "Name every item from top left to bottom right."],
        (scene, _) => new("", string.Join(", ", scene.Items.Select(item => Names[item.Label]))));

    public static readonly SceneTask ReversedList = new("reversed_list", ["List the items in reverse reading order.", "Name every item from bottom right to top left."],
        (scene, _) => new("", string.Join(", ", scene.Items.Reverse().Select(item => Names[item.Label]))));

    /// <summary>Every task, in the order the suite asks them about each scene.</summary>
    public static readonly IReadOnlyList<SceneTask> All = [NameAt, GroupAt, BodyPartAt, CountGroup, Presence, List, ReversedList];

    /// <summary>A question about a randomly chosen occupied cell: the subject is its position, the answer the item's label in one vocabulary.</summary>
    static SceneQuestion AtRandomItem(FashionScene scene, Random random, Func<int, string> answer)
    {
        var occupied = scene.OccupiedCells.ToList();
        int cell = occupied[random.Next(occupied.Count)];
        return new(FashionScene.PositionNames[cell], answer(scene.Cells[cell]!.Value.Label));
    }
}
