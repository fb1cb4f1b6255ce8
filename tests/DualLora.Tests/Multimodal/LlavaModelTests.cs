using DualLora.Adapters;
using DualLora.Training;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Multimodal;

public class LlavaModelTests
{
    const long Image = LlavaConfig.ImageTokenId, Ignore = LlavaConfig.IgnoreIndex;

    static LlavaConfig Tiny(VceConfig? vce = null) => new(
        new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 4, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3, NumChannels: 1),
        new LlamaConfig(VocabSize: 13, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1),
        vce);

    static LlavaModel Model(LlavaConfig config) => Weights.Randomize(new LlavaModel(config, ScalarType.Float64), 5, 0.3);

    static MultimodalBatch Batch()
    {
        // Sequence 0: "1 <image> 2 3 | 4 5" (answer 4 5); sequence 1: "6 <image> 7 | 8" then one pad (0).
        var ids = tensor(new long[] { 1, Image, 2, 3, 4, 5, 6, Image, 7, 8, 0, 0 }).reshape(2, 6);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0 }).reshape(2, 6);
        var labels = tensor(new long[] { Ignore, Ignore, Ignore, Ignore, 4, 5, Ignore, Ignore, Ignore, 8, Ignore, Ignore }).reshape(2, 6);
        var pixels = randn(2, 1, 6, 6, dtype: ScalarType.Float64, generator: new Generator(8));
        return new MultimodalBatch(ids, mask, pixels, labels);
    }

    [Fact]
    public void Image_tokens_replace_the_placeholder_and_carry_label_minus_100()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny());
        var batch = Batch();
        var (embeds, mask, labels, _) = model.Prepare(batch);
        Assert.Equal(new long[] { 2, 6 - 1 + 4, 8 }, embeds.shape);          // a 2 x 2 grid gives 4 image tokens
        var (imageTokens, _) = model.connector.Connect(model.vision_tower.Encode(batch.Pixels), 2, 2);
        var table = model.language_model.model.embed_tokens.weight!;
        TensorAssert.BitEqual(table[1], embeds[0, 0]);
        TensorAssert.BitEqual(imageTokens[0], embeds[0, 1..5]);
        TensorAssert.BitEqual(table[2], embeds[0, 5]);
        TensorAssert.BitEqual(imageTokens[1], embeds[1, 1..5]);
        Assert.Equal(new long[] { Ignore, Ignore, Ignore, Ignore, Ignore, Ignore, Ignore, 4, 5 }, labels![0].data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 1, 1, 0, 0 }, mask[1].data<long>().ToArray());
    }

    [Fact]
    public void The_loss_counts_only_the_answer_tokens()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny());
        var output = model.call(Batch());
        var logSoftmax = nn.functional.log_softmax(output.Logits, -1);
        // Answers: sequence 0 predicts 4 at spliced position 7 (from 6) and 5 at 8 (from 7); sequence 1 predicts 8 at 6 (from 5).
        double expected = -(logSoftmax[0, 6, 4].item<double>() + logSoftmax[0, 7, 5].item<double>() + logSoftmax[1, 5, 8].item<double>()) / 3;
        Assert.Equal(expected, output.Loss!.item<double>(), 10);
    }

    [Fact]
    public void A_padded_sequence_gets_the_logits_it_gets_alone()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny(new VceConfig(Heads: 2, Points: 2)));
        var batch = Batch();
        var together = model.call(batch).Logits;
        var alone = model.call(new MultimodalBatch(batch.InputIds[1..2, ..4], batch.AttentionMask[1..2, ..4], batch.Pixels[1..2])).Logits;
        Assert.True(together[1, ..7].allclose(alone[0], rtol: 1e-10, atol: 1e-10));
    }

    [Fact]
    public void Each_stage_trains_exactly_what_the_recipe_says()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny(new VceConfig(Heads: 2, Points: 2)));
        var stage1 = TrainingStage.ConnectorOnly().Apply(model);
        Assert.Equal(["connector"], stage1.Select(g => g.Name));
        model.call(Batch()).Loss!.backward();
        foreach (var (name, p) in model.named_parameters())
            Assert.True((p.grad is not null) == name.StartsWith("connector."), $"stage 1, {name}: gradient {(p.grad is null ? "absent" : "present")}");

        foreach (var p in model.parameters()) p.grad = null;
        // No targets given: the model's own default, the decoder's q_proj and v_proj (the vision tower's are plain Linear layers).
        var handle = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 2, Dropout: 0));
        Assert.Equal(LlavaModel.DecoderQueryValue, handle.Config.TargetRegex);
        using (no_grad()) foreach (var (_, p) in handle.AdapterNamedParameters()) p.normal_(0, 0.1);
        var stage2 = TrainingStage.AdaptersAndConnector(handle).Apply(model);
        Assert.Equal([2e-4, 2e-5], stage2.Select(g => g.LearningRate));
        model.call(Batch()).Loss!.backward();
        foreach (var (name, p) in model.named_parameters())
        {
            bool trains = name.StartsWith("connector.") || name.Contains(".lora_");
            Assert.True((p.grad is not null) == trains, $"stage 2, {name}: gradient {(p.grad is null ? "absent" : "present")}");
            Assert.Equal(trains, stage2.Any(g => g.Parameters.Any(q => q.Name == name)));
        }
        Assert.Equal(["language_model.model.layers.0.self_attn.q_proj", "language_model.model.layers.0.self_attn.v_proj",
            "language_model.model.layers.1.self_attn.q_proj", "language_model.model.layers.1.self_attn.v_proj"], handle.Layers.Select(l => l.Path));
    }

    [Fact]
    public void Targets_given_by_name_still_reach_the_vision_towers_plain_layers_as_an_error()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny());
        var error = Assert.Throws<ArgumentException>(() => AdapterInjection.Inject(model, new DualLoraConfig(Rank: 2) { TargetModules = ["q_proj", "v_proj"] }));
        Assert.Contains("is a Linear, not an AdaptableLinear", error.Message);
    }

    [Fact]
    public void A_sequence_without_exactly_one_image_is_a_clear_error()
    {
        using var scope = NewDisposeScope();
        var model = Model(Tiny());
        var ids = tensor(new long[] { 1, 2, 3 }).reshape(1, 3);
        var error = Assert.Throws<ArgumentException>(() => model.call(new MultimodalBatch(ids, ones_like(ids), randn(1, 1, 6, 6, dtype: ScalarType.Float64))));
        Assert.Contains("exactly one image placeholder", error.Message);
    }
}

public class SmallModelTrainingTests
{
    [Fact]
    public void The_small_model_trains_with_a_flat_live_tensor_count()
    {
        using var outer = NewDisposeScope();
        var config = LlavaConfig.Small();
        var model = new LlavaModel(config);
        Assert.InRange(model.parameters().Sum(p => p.numel()), 2_000_000, 10_000_000);
        var handle = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 4));
        var ids = randint(3, config.Language.VocabSize, [2, 12], dtype: ScalarType.Int64);
        ids[.., 1] = LlavaConfig.ImageTokenId;
        var labels = ids.clone();
        labels[.., ..6] = LlavaConfig.IgnoreIndex;
        var batch = new MultimodalBatch(ids, ones_like(ids), randn(2, 1, 56, 56), labels);
        var options = new TrainerOptions(60) { Schedule = ScheduleKind.Constant, WarmupRatio = 0, Seed = 0 };
        using var trainer = new Trainer<MultimodalBatch>(model, TrainingStage.AdaptersAndConnector(handle, 1e-3, 1e-3), LlavaObjective.For(model, handle), options, handle);
        long live = 0;
        trainer.Progress += p => { if (p.Step == 5) live = DisposeScopeManager.Statistics.ThreadTotalLiveCount; };
        var losses = trainer.Train(BatchSource.Of(_ => batch)).Select(p => p.Loss).ToList();
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        Assert.True(losses[^1] < 0.7 * losses[0], $"the loss went from {losses[0]} to {losses[^1]} on a batch it sees every step");
    }
}
