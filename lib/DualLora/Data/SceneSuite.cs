namespace DualLora.Data;

/// <summary>How many scenes each split of the suite has, and the seed everything is drawn from.</summary>
public sealed record SceneSuiteOptions(int Seed = 0, int TrainingScenes = 3000, int ValidationScenes = 500, int EvaluationScenes = 500)
{
    public int Scenes(SceneSplit split) => split switch
    {
        SceneSplit.Training => TrainingScenes,
        SceneSplit.Validation => ValidationScenes,
        _ => EvaluationScenes,
    };
}

/// <summary>The most common answer of one task on one split, and how often it is right: the chance level a model must beat.</summary>
public sealed record TaskMajority(string Task, SceneSplit Split, string Answer, int Count, int Total)
{
    public double Rate => (double)Count / Total;
}

/// <summary>
/// A multi-task instruction suite built from Fashion-MNIST: scenes of 2x2 items, and for every scene one
/// instruction of each task in <see cref="SceneTasks.All"/>, so tasks are exactly balanced and the same
/// image is asked conflicting questions.
/// <para>
/// Deterministic from the seed, with no global state: the source images are shuffled and partitioned first
/// (80% training, 10% validation, 10% evaluation), so the splits' scenes share no source image; each split
/// then draws its scenes and questions from its own generator, so changing one split's size leaves the
/// others unchanged.
/// </para>
/// </summary>
public sealed class SceneSuite
{
    public static readonly IReadOnlyList<SceneSplit> Splits = Enum.GetValues<SceneSplit>();

    public SceneSuiteOptions Options { get; }

    readonly Dictionary<SceneSplit, IReadOnlyList<int>> sourceImages = [];
    readonly Dictionary<SceneSplit, IReadOnlyList<FashionScene>> scenes = [];
    readonly Dictionary<SceneSplit, IReadOnlyList<SceneSample>> samples = [];

    SceneSuite(SceneSuiteOptions options) => Options = options;

    /// <summary>Builds the suite over a loaded split of Fashion-MNIST (the shipped test split is enough).</summary>
    public static SceneSuite Build(FashionMnist source, SceneSuiteOptions options) =>
        Build(source.Labels.data<long>().Select(label => (int)label).ToList(), options);

    /// <summary>Builds the suite over source images given by their labels; image <c>i</c> of a scene is index <c>i</c> of the source.</summary>
    public static SceneSuite Build(IReadOnlyList<int> labels, SceneSuiteOptions options)
    {
        var suite = new SceneSuite(options);
        var random = new Random(options.Seed);
        int[] order = Enumerable.Range(0, labels.Count).ToArray();
        random.Shuffle(order);
        int validationStart = labels.Count * 8 / 10, evaluationStart = labels.Count * 9 / 10;
        suite.sourceImages[SceneSplit.Training] = order[..validationStart];
        suite.sourceImages[SceneSplit.Validation] = order[validationStart..evaluationStart];
        suite.sourceImages[SceneSplit.Evaluation] = order[evaluationStart..];

        int[] splitSeeds = Splits.Select(_ => random.Next()).ToArray();
        foreach (var split in Splits)
        {
            if (suite.sourceImages[split].Count == 0)
                throw new ArgumentException($"{labels.Count} source images leave none for the {split.ToString().ToLowerInvariant()} scenes.");
            var splitRandom = new Random(splitSeeds[(int)split]);
            var splitScenes = Enumerable.Range(0, options.Scenes(split)).Select(_ => DrawScene(suite.sourceImages[split], labels, splitRandom)).ToList();
            suite.scenes[split] = splitScenes;
            suite.samples[split] = splitScenes.SelectMany((scene, i) => Ask(split, i, scene, splitRandom)).ToList();
        }
        return suite;
    }

    /// <summary>The source image indices a split's scenes draw from; the three are disjoint.</summary>
    public IReadOnlyList<int> SourceImages(SceneSplit split) => sourceImages[split];

    public IReadOnlyList<FashionScene> Scenes(SceneSplit split) => scenes[split];

    /// <summary>A split's samples, scene by scene, each scene's in the order of <see cref="SceneTasks.All"/>.</summary>
    public IReadOnlyList<SceneSample> Samples(SceneSplit split) => samples[split];

    /// <summary>
    /// The texts the small model's tokenizer is built from: every training instruction and answer, in order.
    /// Training only, so the evaluation split never shapes the vocabulary.
    /// </summary>
    public IEnumerable<string> TrainingTexts() => Samples(SceneSplit.Training).SelectMany(s => new[] { s.Instruction, s.Answer });

    /// <summary>Per task and split (in that order), the most common answer and its rate; ties go to the first answer in ordinal order.</summary>
    public IReadOnlyList<TaskMajority> MajorityRates() =>
        (from task in SceneTasks.All
         from split in Splits
         let answers = samples[split].Where(s => s.Task == task.Name).ToList()
         let majority = answers.GroupBy(s => s.Answer).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).First()
         select new TaskMajority(task.Name, split, majority.Key, majority.Count(), answers.Count)).ToList();

    /// <summary>The split's name as ids and file names spell it.</summary>
    public static string SplitName(SceneSplit split) => split.ToString().ToLowerInvariant();

    /// <summary>One to four items, in random cells, each a random image of the split's source images.</summary>
    static FashionScene DrawScene(IReadOnlyList<int> images, IReadOnlyList<int> labels, Random random)
    {
        int[] cells = Enumerable.Range(0, FashionScene.CellCount).ToArray();
        random.Shuffle(cells);
        var occupied = cells[..random.Next(1, FashionScene.CellCount + 1)];
        var items = new SceneItem?[FashionScene.CellCount];
        foreach (int cell in occupied.Order())
        {
            int image = images[random.Next(images.Count)];
            items[cell] = new SceneItem(image, labels[image]);
        }
        return new FashionScene(items);
    }

    // Phrasings rotate with the scene index (offset by the task), so each task's phrasings are used equally often.
    static IEnumerable<SceneSample> Ask(SceneSplit split, int sceneIndex, FashionScene scene, Random random) =>
        SceneTasks.All.Select((task, t) =>
        {
            int phrasing = (sceneIndex + t) % task.Phrasings.Count;
            var question = task.Ask(scene, random);
            return new SceneSample($"{SplitName(split)}-{sceneIndex:D5}-{task.Name}", split, sceneIndex, task.Name, phrasing,
                task.Instruction(phrasing, question.Subject), question.Answer);
        });
}
