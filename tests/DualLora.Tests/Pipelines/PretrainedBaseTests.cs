using DualLora.Adapters;
using DualLora.Data;
using DualLora.Multimodal;
using DualLora.Pipelines;
using DualLora.Runtime;
using DualLora.Tests.Cli;
using DualLora.Training;
using DualLora.Vision;
using static TorchSharp.torch;

namespace DualLora.Tests.Pipelines;

/// <summary>The committed small base (data/pretrained/small-llava), the pretrain command, and fine-tuning from the base.</summary>
public class PretrainedBaseTests
{
    static readonly RuntimeEnvironment Environment = RuntimeEnvironment.Find(AppContext.BaseDirectory);
    static readonly string Root = Path.GetDirectoryName(Environment.SourceFile)!;
    static readonly string Committed = Path.Combine(Root, "data", "pretrained", "small-llava");

    [Fact]
    public void The_committed_base_loads_as_the_small_model_and_describes_validation_scenes()
    {
        using var scope = NewDisposeScope();
        var model = HuggingFaceModels.LoadLlava(Committed);
        var small = LlavaConfig.Small(withVce: false);
        Assert.Equal(small.Vision, model.Config.Vision);
        Assert.Equal(small.Language, model.Config.Language);
        var tokenizer = HuggingFaceModels.LoadTokenizer(Committed);
        Assert.Equal(File.ReadAllBytes(Path.Combine(Root, "data", "tokenizer", "tokenizer.model")), File.ReadAllBytes(Path.Combine(Committed, "tokenizer.model")));

        using var source = FashionMnist.Load(Environment, FashionMnistSplit.Test);
        var suite = SceneSuite.Build(source, new SceneSuiteOptions());
        var collator = InstructionCollator.For(tokenizer, ImagePreprocessing.ForVisionTower(model.Config.Vision));
        var scores = Pretraining.Evaluate(model, tokenizer, collator, suite, source, SceneSplit.Validation, scenes: 16, batchSize: 16);
        // data/pretrained/small-llava/README.md gives the accuracy measured on 200 validation scenes; this is a loose floor under it.
        Assert.True(scores.FieldAccuracy > 0.5, $"field accuracy {scores.FieldAccuracy:P1} on 16 validation scenes");
    }

    [Fact]
    public void Fine_tuning_starts_from_the_base_with_the_vision_tower_and_the_decoder_frozen()
    {
        using var scope = NewDisposeScope();
        var model = HuggingFaceModels.LoadLlava(Committed, new VceConfig());
        var pretrained = HuggingFaceModels.LoadLlava(Committed).state_dict();
        var adapters = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 8));
        var stage = TrainingStage.AdaptersAndConnector(adapters);
        var groups = stage.Apply(model);

        var adapterNames = adapters.AdapterNamedParameters().Select(p => p.Name).ToHashSet();
        Assert.NotEmpty(adapterNames);
        Assert.All(adapterNames, name => Assert.Matches(@"^language_model\.model\.layers\.\d+\.self_attn\.(q_proj|v_proj)\.", name));
        foreach (var (name, parameter) in model.named_parameters())
        {
            bool shouldTrain = adapterNames.Contains(name) || name.StartsWith("connector.", StringComparison.Ordinal);
            Assert.True(parameter.requires_grad == shouldTrain, $"{name}: requires_grad {parameter.requires_grad}");
        }
        Assert.Contains(groups.Single(g => g.Name == "connector").Parameters, p => p.Name.StartsWith("connector.vce."));

        // The frozen weights (the adapted layers' own included) and the projector are the pretrained ones; only VCE and the adapters are new.
        var state = model.state_dict();
        foreach (var (key, value) in pretrained)
        {
            Assert.True(state.ContainsKey(key), $"{key} is not in the adapted model");
            TensorAssert.BitEqual(value, state[key], key);
        }
    }

    [Fact]
    public void The_pretrain_command_trains_reports_and_saves_a_model_LoadLlava_reads()
    {
        using var temp = new TempFolder();
        var (exit, output, error) = CommandLine.Run("pretrain", "--steps", "2", "--batch", "2", "--scenes", "4", "--validation", "2", "--log-every", "1",
            "--seed", "3", "--out", temp.Path);
        Assert.True(exit == 0, error);
        Assert.Contains("pretrain: seed 3, 2 steps of 2", output);
        Assert.Matches(@"step +2/2 +loss \d+\.\d{4} +lr [\d.E+-]+ +grad norm [\d.]+ +\d+ tokens/s", output);
        Assert.Matches(@"generic task on 2 validation scenes: exact match \d+\.\d%, field accuracy \d+\.\d%", output);
        Assert.Contains("  full ", output);
        Assert.Matches(@"cell descriptions: exact match \d+\.\d%, the item's name right for (\d+\.\d|NaN)% of the cells holding one", output);

        using var scope = NewDisposeScope();
        var loaded = HuggingFaceModels.LoadLlava(temp.Path);
        Assert.Null(loaded.connector.vce);
        Assert.NotNull(HuggingFaceModels.LoadTokenizer(temp.Path));

        // --from continues from the saved base.
        string further = Path.Combine(temp.Path, "further");
        var (again, continued, againError) = CommandLine.Run("pretrain", "--from", temp.Path, "--steps", "1", "--batch", "2", "--scenes", "4", "--validation", "1",
            "--out", further);
        Assert.True(again == 0, againError);
        Assert.Contains($"continuing from {temp.Path}", continued);
        Assert.NotNull(HuggingFaceModels.LoadLlava(further));
    }
}
