using DualLora.Data;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Runtime;
using static TorchSharp.torch;

namespace DualLora.Tests.Data;

public class SceneDescriptionTests
{
    static readonly RuntimeEnvironment Environment = RuntimeEnvironment.Find(AppContext.BaseDirectory);
    static readonly string TokenizerFolder = Path.Combine(Path.GetDirectoryName(Environment.SourceFile)!, "data", "tokenizer");

    // Labels: 7 sneaker (footwear, feet), 8 bag (accessory, hand), 0 t-shirt (top, torso), 9 boot (footwear, feet).
    static readonly FashionScene TwoItems = new([new SceneItem(0, 7), null, new SceneItem(1, 8), null]);
    static readonly FashionScene Full = new([new SceneItem(0, 0), new SceneItem(1, 9), new SceneItem(2, 7), new SceneItem(3, 0)]);

    [Fact]
    public void A_description_states_every_cell_the_list_the_counts_and_whether_the_scene_is_full()
    {
        Assert.Equal("top left: sneaker, footwear, feet. top right: no item. bottom left: bag, accessory, hand. bottom right: no item. " +
                     "items: sneaker, bag. top items: 0. footwear items: 1. full: no.", SceneDescription.Describe(TwoItems));
        Assert.Equal("top left: t-shirt, top, torso. top right: boot, footwear, feet. bottom left: sneaker, footwear, feet. bottom right: t-shirt, top, torso. " +
                     "items: t-shirt, boot, sneaker, t-shirt. top items: 2. footwear items: 2. full: yes.", SceneDescription.Describe(Full));
    }

    [Fact]
    public void Parse_reads_the_fields_back_and_field_accuracy_counts_the_equal_ones()
    {
        string reference = SceneDescription.Describe(Full);
        Assert.Equal(SceneDescription.Fields(Full).ToDictionary(f => f.Name, f => f.Value), SceneDescription.Parse(reference));
        Assert.Equal(1.0, SceneDescription.FieldAccuracy(reference, reference));
        // One cell wrong (shirt for t-shirt), the count wrong, and the "full" field missing: 5 of 8 right.
        string wrong = reference.Replace("top left: t-shirt, top, torso.", "top left: shirt, top, torso.").Replace("top items: 2.", "top items: 3.").Replace(" full: yes.", "");
        Assert.Equal(5 / 8.0, SceneDescription.FieldAccuracy(wrong, reference));
        Assert.Equal(["top left", "top right", "bottom left", "bottom right", "items", "top items", "footwear items", "full"], SceneDescription.FieldNames);
        Assert.Equal([false, true, true, true, true, false, true, false], SceneDescription.FieldsRight(wrong, reference));
        Assert.Equal(0.0, SceneDescription.FieldAccuracy("no item. no item.", reference));
    }

    [Fact]
    public void A_cell_order_reorders_only_the_cells_and_must_be_a_permutation()
    {
        Assert.Equal("bottom left: bag, accessory, hand. top right: no item. bottom right: no item. top left: sneaker, footwear, feet. " +
                     "items: sneaker, bag. top items: 0. footwear items: 1. full: no.", SceneDescription.Describe(TwoItems, [2, 1, 3, 0]));
        Assert.Equal(1.0, SceneDescription.FieldAccuracy(SceneDescription.Describe(Full, [3, 2, 1, 0]), SceneDescription.Describe(Full)));
        Assert.Equal("bag, accessory, hand", SceneDescription.DescribeCell(TwoItems, 2));
        Assert.Equal("no item", SceneDescription.DescribeCell(TwoItems, 3));
        var error = Assert.Throws<ArgumentException>(() => SceneDescription.Describe(Full, [0, 1, 1, 3]));
        Assert.Contains("permutation of 0 to 3, got [0, 1, 1, 3]", error.Message);
    }

    [Fact]
    public void Samples_describe_each_scene_and_one_of_its_cells_with_ids_apart_from_the_suites_tasks()
    {
        var labels = Enumerable.Range(0, 100).Select(i => i % 10).ToList();
        var suite = SceneSuite.Build(labels, new SceneSuiteOptions(TrainingScenes: 4, ValidationScenes: 2, EvaluationScenes: 2));
        var samples = SceneDescription.Samples(suite, SceneSplit.Training);
        Assert.Equal(8, samples.Count);
        Assert.Equal(["training-00003-description", "training-00003-cell"], samples.Skip(6).Select(s => s.Id));
        Assert.All(samples, s => Assert.Equal(int.Parse(s.Id.Split('-')[1], System.Globalization.CultureInfo.InvariantCulture), s.SceneIndex));
        var scene = suite.Scenes(SceneSplit.Training)[3];
        Assert.Equal(1.0, SceneDescription.FieldAccuracy(samples[6].Answer, SceneDescription.Describe(scene)));
        var cell = samples[7];
        int position = FashionScene.PositionNames.ToList().FindIndex(name => cell.Instruction == $"Describe the item at the {name}.");
        Assert.True(position >= 0, cell.Instruction);
        Assert.Equal(SceneDescription.DescribeCell(scene, position), cell.Answer);
        Assert.Empty(samples.Select(s => s.Id).Intersect(suite.Samples(SceneSplit.Training).Select(s => s.Id)));

        // Seeded: the same again, and a larger suite describes its first scenes alike; the drawn orders are not all reading order.
        Assert.Equal(samples, SceneDescription.Samples(suite, SceneSplit.Training));
        var larger = SceneSuite.Build(labels, new SceneSuiteOptions(TrainingScenes: 40, ValidationScenes: 2, EvaluationScenes: 2));
        var largerSamples = SceneDescription.Samples(larger, SceneSplit.Training);
        Assert.Equal(samples, largerSamples.Take(8));
        Assert.Contains(largerSamples.Where(s => s.Task == SceneDescription.TaskName), s => s.Answer != SceneDescription.Describe(larger.Scenes(SceneSplit.Training)[s.SceneIndex]));

        var instruction = samples[6].ToInstructionSample();
        Assert.Equal("images/training-00003.png", instruction.ImagePath);
        Assert.Equal("<image>\nDescribe the picture.", instruction.Turns[0].Text);
        Assert.Equal(samples[6].Answer, instruction.Turns[1].Text);
        Assert.Equal("description", instruction.Extra["task"]);
        Assert.Equal("cell", samples[7].ToInstructionSample().Extra["task"]);
    }

    /// <summary>
    /// The point of the generic task: on the training split, every token the collator makes the model learn for an answer of
    /// the seven tasks (its label ids, <c>&lt;/s&gt;</c> included) is a token it learns for some description; so a decoder
    /// pretrained on descriptions has written each of them. And every answer word is one piece of the tokenizer.
    /// </summary>
    [Fact]
    public void Every_answer_token_of_the_seven_tasks_on_the_training_split_is_written_by_some_description()
    {
        using var source = FashionMnist.Load(Environment, FashionMnistSplit.Test);
        var suite = SceneSuite.Build(source, new SceneSuiteOptions());
        var tokenizer = HuggingFaceModels.LoadTokenizer(TokenizerFolder);
        var collator = InstructionCollator.For(tokenizer, ImagePreprocessing.Grey(FashionScene.Size));
        IEnumerable<long> Learned(SceneSample sample) => collator.Tokenize(sample.ToInstructionSample()).Labels.Where(id => id != LlavaConfig.IgnoreIndex);

        var written = SceneDescription.Samples(suite, SceneSplit.Training).SelectMany(Learned).ToHashSet();
        var answerTokens = suite.Samples(SceneSplit.Training).SelectMany(Learned).ToHashSet();
        var missing = answerTokens.Where(id => !written.Contains(id)).Select(id => tokenizer.Decode([(int)id])).ToList();
        Assert.True(missing.Count == 0, $"answer tokens no description writes: {string.Join(", ", missing)}");

        var answers = suite.Samples(SceneSplit.Training).Select(s => s.Answer).Distinct().ToList();
        foreach (string word in answers.SelectMany(a => a.Split(' ')).Distinct())
        {
            var ids = tokenizer.EncodeToIds(word, addBeginningOfSentence: false, addEndOfSentence: false);
            Assert.True(ids.Count == 1 && ids[0] >= TokenizerBuilder.FirstPieceId, $"'{word}' is [{string.Join(", ", ids)}], not one piece");
        }
        // The vocabularies the tasks draw on, all of them answered in this split.
        var words = answers.SelectMany(a => a.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries)).ToHashSet();
        Assert.Superset(ClothingVocabulary.Names.Concat(ClothingVocabulary.Groups).Concat(ClothingVocabulary.BodyParts).Concat(["0", "1", "2", "3", "4", "yes", "no"]).ToHashSet(), words);
    }

    [Fact]
    public void A_scenes_image_in_memory_is_what_the_grey_preprocessing_makes_of_its_exported_png()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempFolder();
        using var source = FashionMnist.Load(Environment, FashionMnistSplit.Test);
        var suite = SceneSuite.Build(source, new SceneSuiteOptions(TrainingScenes: 3, ValidationScenes: 1, EvaluationScenes: 1));
        SceneSuiteExport.Write(suite, source, temp.Path);
        var preprocessing = ImagePreprocessing.Grey(FashionScene.Size);
        for (int i = 0; i < 3; i++)
            TensorAssert.BitEqual(preprocessing.Load(Path.Combine(temp.Path, SceneSuiteExport.ImagePath(SceneSplit.Training, i))),
                suite.Scenes(SceneSplit.Training)[i].Image(source), $"scene {i}");
    }
}
