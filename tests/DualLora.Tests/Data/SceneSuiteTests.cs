using DualLora.Data;
using DualLora.Runtime;

namespace DualLora.Tests.Data;

/// <summary>The shipped Fashion-MNIST test split, loaded once for the scene tests, with its pixels as plain bytes for the oracles.</summary>
public sealed class ShippedFashionMnist : IDisposable
{
    public FashionMnist Source { get; } = FashionMnist.Load(RuntimeEnvironment.Find(AppContext.BaseDirectory), FashionMnistSplit.Test);
    public byte[] Pixels { get; }

    public ShippedFashionMnist() => Pixels = Source.Images.bytes.ToArray();

    /// <summary>Pixel (y, x) of source image <paramref name="image"/>, read from the raw bytes.</summary>
    public byte Pixel(int image, int y, int x) => Pixels[(image * 28 + y) * 28 + x];

    public void Dispose() => Source.Dispose();
}

public class SceneSuiteTests(ShippedFashionMnist fashion) : IClassFixture<ShippedFashionMnist>
{
    static readonly SceneSuiteOptions Small = new(Seed: 5, TrainingScenes: 300, ValidationScenes: 60, EvaluationScenes: 60);

    /// <summary>The scene's expected pixels, put together from the source bytes cell by cell.</summary>
    byte[] ExpectedPixels(FashionScene scene)
    {
        var expected = new byte[56 * 56];
        for (int cell = 0; cell < 4; cell++)
            if (scene.Cells[cell] is { } item)
                for (int y = 0; y < 28; y++)
                    for (int x = 0; x < 28; x++)
                        expected[(cell / 2 * 28 + y) * 56 + cell % 2 * 28 + x] = fashion.Pixel(item.ImageIndex, y, x);
        return expected;
    }

    [Fact]
    public void A_scene_holds_its_source_items_pixels_in_their_cells_and_zeros_in_empty_ones()
    {
        var scene = new FashionScene([new SceneItem(3, 1), null, new SceneItem(9999, 5), new SceneItem(0, 9)]);
        using var pixels = scene.Render(fashion.Source);
        Assert.Equal(new long[] { 56, 56 }, pixels.shape);
        Assert.Equal(TorchSharp.torch.ScalarType.Byte, pixels.dtype);
        byte[] actual = pixels.bytes.ToArray();
        Assert.Equal(ExpectedPixels(scene), actual);
        Assert.All(Enumerable.Range(0, 28), y => Assert.All(Enumerable.Range(28, 28), x => Assert.Equal(0, actual[y * 56 + x])));
        Assert.True(actual.Count(p => p > 0) > 3 * 100, "the three items are not black");
    }

    [Fact]
    public void Every_suite_scene_renders_to_its_items_pixels()
    {
        var suite = SceneSuite.Build(fashion.Source, Small);
        foreach (var scene in suite.Scenes(SceneSplit.Validation))
        {
            using var pixels = scene.Render(fashion.Source);
            Assert.Equal(ExpectedPixels(scene), pixels.bytes.ToArray());
        }
    }

    [Fact]
    public void Scene_items_carry_their_source_labels()
    {
        var labels = fashion.Source.Labels.data<long>().ToArray();
        var suite = SceneSuite.Build(fashion.Source, Small);
        Assert.All(SceneSuite.Splits.SelectMany(suite.Scenes).SelectMany(s => s.Items), item => Assert.Equal(labels[item.ImageIndex], item.Label));
    }

    static IEnumerable<string> Fingerprint(SceneSuite suite) =>
        SceneSuite.Splits.SelectMany(split =>
            suite.Scenes(split).Select(s => string.Join(" ", s.Cells.Select(c => c?.ImageIndex.ToString() ?? "-")))
                .Concat(suite.Samples(split).Select(s => $"{s.Id}|{s.Task}|{s.Phrasing}|{s.Instruction}|{s.Answer}")));

    [Fact]
    public void The_same_seed_gives_the_same_suite_and_another_seed_a_different_one()
    {
        var first = SceneSuite.Build(fashion.Source, Small);
        var again = SceneSuite.Build(fashion.Source, Small);
        var other = SceneSuite.Build(fashion.Source, Small with { Seed = 6 });
        Assert.Equal(Fingerprint(first), Fingerprint(again));
        Assert.Equal(Fingerprint(first).Count(), Fingerprint(other).Count());
        Assert.NotEqual(Fingerprint(first), Fingerprint(other));
        Assert.NotEqual(first.SourceImages(SceneSplit.Evaluation), other.SourceImages(SceneSplit.Evaluation));
    }

    [Fact]
    public void One_splits_size_does_not_change_another_splits_scenes()
    {
        var first = SceneSuite.Build(fashion.Source, Small);
        var moreTraining = SceneSuite.Build(fashion.Source, Small with { TrainingScenes = 500 });
        Assert.Equal(first.Samples(SceneSplit.Evaluation), moreTraining.Samples(SceneSplit.Evaluation));
    }

    [Fact]
    public void The_splits_share_no_source_image()
    {
        var suite = SceneSuite.Build(fashion.Source, Small with { TrainingScenes = 3000 });
        var used = SceneSuite.Splits.ToDictionary(split => split, split => suite.Scenes(split).SelectMany(s => s.Items).Select(i => i.ImageIndex).ToHashSet());
        Assert.Empty(used[SceneSplit.Training].Intersect(used[SceneSplit.Validation]));
        Assert.Empty(used[SceneSplit.Training].Intersect(used[SceneSplit.Evaluation]));
        Assert.Empty(used[SceneSplit.Validation].Intersect(used[SceneSplit.Evaluation]));
        foreach (var split in SceneSuite.Splits) Assert.Subset(suite.SourceImages(split).ToHashSet(), used[split]);
        // The partition covers the source once: 8,000 / 1,000 / 1,000 of the 10,000 test images.
        Assert.Equal(Enumerable.Range(0, 10_000), SceneSuite.Splits.SelectMany(suite.SourceImages).Order());
        Assert.Equal([8000, 1000, 1000], SceneSuite.Splits.Select(s => suite.SourceImages(s).Count));
    }

    [Fact]
    public void Every_task_is_asked_once_per_scene_with_its_phrasings_used_equally()
    {
        var suite = SceneSuite.Build(fashion.Source, Small with { ValidationScenes = 61 });
        foreach (var split in SceneSuite.Splits)
        {
            int scenes = suite.Scenes(split).Count;
            var samples = suite.Samples(split);
            Assert.Equal(scenes * SceneTasks.All.Count, samples.Count);
            Assert.Equal(samples.Count, samples.Select(s => s.Id).Distinct().Count());
            foreach (var task in SceneTasks.All)
            {
                var asked = samples.Where(s => s.Task == task.Name).ToList();
                Assert.Equal(Enumerable.Range(0, scenes), asked.Select(s => s.SceneIndex));
                var perPhrasing = asked.GroupBy(s => s.Phrasing).Select(g => g.Count()).ToList();
                Assert.Equal(task.Phrasings.Count, perPhrasing.Count);
                Assert.True(perPhrasing.Max() - perPhrasing.Min() <= 1, $"{split} {task.Name}: phrasings used {string.Join("/", perPhrasing)} times");
            }
        }
    }

    [Fact]
    public void Samples_answer_their_own_scene()
    {
        var suite = SceneSuite.Build(fashion.Source, Small);
        var scenes = suite.Scenes(SceneSplit.Training);
        foreach (var sample in suite.Samples(SceneSplit.Training).Where(s => s.Task == "list"))
            Assert.Equal(string.Join(", ", scenes[sample.SceneIndex].Items.Select(i => ClothingVocabulary.Names[i.Label])), sample.Answer);
        foreach (var sample in suite.Samples(SceneSplit.Training).Where(s => s.Task == "presence"))
        {
            string asked = ClothingVocabulary.Names.Single(name => sample.Instruction.EndsWith($" {name}?", StringComparison.Ordinal));
            bool present = scenes[sample.SceneIndex].Items.Any(i => ClothingVocabulary.Names[i.Label] == asked);
            Assert.Equal(present ? "yes" : "no", sample.Answer);
        }
    }

    [Fact]
    public void Majority_rates_count_the_most_common_answer_per_task_and_split()
    {
        var suite = SceneSuite.Build(fashion.Source, Small);
        var rates = suite.MajorityRates();
        Assert.Equal(SceneTasks.All.Count * 3, rates.Count);
        foreach (var rate in rates)
        {
            var answers = suite.Samples(rate.Split).Where(s => s.Task == rate.Task).Select(s => s.Answer).ToList();
            Assert.Equal(answers.Count, rate.Total);
            Assert.Equal(answers.Count(a => a == rate.Answer), rate.Count);
            Assert.All(answers.GroupBy(a => a), g => Assert.True(g.Count() <= rate.Count));
        }
        var presence = rates.Single(r => r.Task == "presence" && r.Split == SceneSplit.Training);
        Assert.InRange(presence.Rate, 0.5, 0.6);   // half the questions ask for a present class
    }

    [Fact]
    public void Occupied_patches_follow_the_cells_that_hold_an_item()
    {
        var scene = new FashionScene([new SceneItem(0, 1), null, null, new SceneItem(1, 2)]);   // top left and bottom right
        using var patches = scene.OccupiedPatches(4);
        bool[] expected = [true, true, false, false, true, true, false, false, false, false, true, true, false, false, true, true];
        Assert.Equal(expected, patches.data<bool>().ToArray());
        Assert.Equal(32, scene.OccupiedPatches(8).sum().item<long>());
        Assert.Throws<ArgumentException>(() => scene.OccupiedPatches(7));
    }
}
