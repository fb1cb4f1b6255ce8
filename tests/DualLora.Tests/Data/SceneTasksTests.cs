using DualLora.Data;

namespace DualLora.Tests.Data;

public class SceneTasksTests
{
    // Fashion-MNIST labels, written out so the expected answers below are checked by hand, not derived.
    const int TShirt = 0, Trouser = 1, Dress = 3, Coat = 4, Sneaker = 7, Bag = 8, Boot = 9;

    static FashionScene Scene(params int?[] labels) =>
        new(labels.Select((label, cell) => label is { } l ? new SceneItem(100 + cell, l) : (SceneItem?)null).ToList());

    /// <summary>Every question a task asks about the scene over many draws: subject to answer (each subject must always get the same answer).</summary>
    static Dictionary<string, string> Questions(SceneTask task, FashionScene scene)
    {
        var random = new Random(7);
        var answers = new Dictionary<string, string>();
        for (int draw = 0; draw < 200; draw++)
        {
            var question = task.Ask(scene, random);
            if (answers.TryGetValue(question.Subject, out var earlier)) Assert.Equal(earlier, question.Answer);
            else answers[question.Subject] = question.Answer;
        }
        return answers;
    }

    [Fact]
    public void Each_task_answers_a_hand_checked_scene_correctly()
    {
        // top left: coat, top right: empty, bottom left: sneaker, bottom right: ankle boot
        var scene = Scene(Coat, null, Sneaker, Boot);

        Assert.Equal(new Dictionary<string, string> { ["top left"] = "coat", ["bottom left"] = "sneaker", ["bottom right"] = "boot" },
            Questions(SceneTasks.NameAt, scene));
        Assert.Equal(new Dictionary<string, string> { ["top left"] = "top", ["bottom left"] = "footwear", ["bottom right"] = "footwear" },
            Questions(SceneTasks.GroupAt, scene));
        Assert.Equal(new Dictionary<string, string> { ["top left"] = "torso", ["bottom left"] = "feet", ["bottom right"] = "feet" },
            Questions(SceneTasks.BodyPartAt, scene));
        Assert.Equal(new Dictionary<string, string> { ["top"] = "1", ["footwear"] = "2" }, Questions(SceneTasks.CountGroup, scene));
        Assert.Equal(new Dictionary<string, string> { [""] = "coat, sneaker, boot" }, Questions(SceneTasks.List, scene));
        Assert.Equal(new Dictionary<string, string> { [""] = "boot, sneaker, coat" }, Questions(SceneTasks.ReversedList, scene));

        var presence = Questions(SceneTasks.Presence, scene);
        Assert.Equal(["boot", "coat", "sneaker"], presence.Where(p => p.Value == "yes").Select(p => p.Key).Order());
        Assert.Equal(7, presence.Count(p => p.Value == "no"));   // over 200 draws, every absent class is asked for
        Assert.DoesNotContain(presence, p => p.Value == "no" && p.Key is "boot" or "coat" or "sneaker");
    }

    [Fact]
    public void The_other_groups_and_body_parts_and_a_scene_without_footwear()
    {
        // top left: empty, top right: bag, bottom left: trouser, bottom right: dress
        var scene = Scene(null, Bag, Trouser, Dress);
        Assert.Equal(new Dictionary<string, string> { ["top right"] = "accessory", ["bottom left"] = "bottom", ["bottom right"] = "one-piece" },
            Questions(SceneTasks.GroupAt, scene));
        Assert.Equal(new Dictionary<string, string> { ["top right"] = "hand", ["bottom left"] = "legs", ["bottom right"] = "body" },
            Questions(SceneTasks.BodyPartAt, scene));
        Assert.Equal(new Dictionary<string, string> { ["top"] = "0", ["footwear"] = "0" }, Questions(SceneTasks.CountGroup, scene));
        Assert.Equal(new Dictionary<string, string> { [""] = "bag, trouser, dress" }, Questions(SceneTasks.List, scene));
    }

    [Fact]
    public void A_single_item_scene_and_a_full_one()
    {
        Assert.Equal(new Dictionary<string, string> { ["bottom right"] = "t-shirt" }, Questions(SceneTasks.NameAt, Scene(null, null, null, TShirt)));
        var full = Scene(TShirt, TShirt, Coat, Sneaker);
        Assert.Equal(new Dictionary<string, string> { ["top"] = "3", ["footwear"] = "1" }, Questions(SceneTasks.CountGroup, full));
        Assert.Equal(new Dictionary<string, string> { [""] = "sneaker, coat, t-shirt, t-shirt" }, Questions(SceneTasks.ReversedList, full));
    }

    [Fact]
    public void Instructions_fill_the_subject_into_each_phrasing()
    {
        Assert.Equal("What is the item at the top left?", SceneTasks.NameAt.Instruction(0, "top left"));
        Assert.Equal("Name the bottom right item.", SceneTasks.NameAt.Instruction(1, "bottom right"));
        Assert.Equal("Does the picture show a bag?", SceneTasks.Presence.Instruction(1, "bag"));
        Assert.Equal("Count the footwear items.", SceneTasks.CountGroup.Instruction(1, "footwear"));
        Assert.Equal("List the items in reverse reading order.", SceneTasks.ReversedList.Instruction(0, ""));
    }

    [Fact]
    public void There_are_at_least_five_tasks_with_distinct_names_and_two_distinct_phrasings_each()
    {
        Assert.True(SceneTasks.All.Count >= 5);
        Assert.Equal(SceneTasks.All.Count, SceneTasks.All.Select(t => t.Name).Distinct().Count());
        Assert.All(SceneTasks.All, task => Assert.True(task.Phrasings.Distinct().Count() >= 2, task.Name));
    }
}
