using DualLora.Adapters;
using DualLora.IO;
using DualLora.Tests.Adapters;
using DualLora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Tests.Training;

public class LearningRateScheduleTests
{
    [Fact]
    public void Warm_up_climbs_linearly_then_the_cosine_falls_towards_zero()
    {
        var schedule = new LearningRateSchedule(ScheduleKind.Cosine, TotalSteps: 100, WarmupRatio: 0.03);
        Assert.Equal(3, schedule.WarmupSteps);                                  // ⌈0.03 · 100⌉
        Assert.Equal([1 / 3.0, 2 / 3.0, 1.0], new[] { 0, 1, 2 }.Select(t => schedule.Factor(t)));
        Assert.Equal(1.0, schedule.Factor(3));                                  // the cosine starts at its peak
        Assert.Equal(0.5, schedule.Factor(3 + 97 / 2.0 is var half ? (long)half : 0), 1e-1);
        Assert.Equal(0.5 * (1 + Math.Cos(Math.PI * 50 / 97.0)), schedule.Factor(53), 15);
        Assert.Equal(0.5 * (1 + Math.Cos(Math.PI * 96 / 97.0)), schedule.Factor(99), 15);
        Assert.True(schedule.Factor(99) is > 0 and < 0.001);
    }

    [Fact]
    public void A_constant_schedule_holds_the_peak_after_warm_up_and_bad_settings_are_refused()
    {
        var schedule = new LearningRateSchedule(ScheduleKind.Constant, TotalSteps: 10, WarmupRatio: 0.2);
        Assert.Equal([0.5, 1, 1, 1], new[] { 0, 1, 2, 9 }.Select(t => schedule.Factor(t)));
        Assert.Equal(1.0, new LearningRateSchedule(ScheduleKind.Cosine, 10, 0).Factor(0));
        Assert.Contains("warm-up ratio", Assert.Throws<ArgumentException>(() => new LearningRateSchedule(ScheduleKind.Cosine, 10, 1.5)).Message);
    }
}

public class ShuffledOrderTests
{
    [Fact]
    public void Every_epoch_is_a_permutation_drawn_from_the_seed_alone()
    {
        var order = new ShuffledOrder(itemCount: 10, batchSize: 3, seed: 7);
        Assert.Equal(3, order.BatchesPerEpoch);                                 // the tenth item waits for a later epoch
        var epoch0 = Enumerable.Range(0, 3).SelectMany(p => order.IndicesAt(p)).ToList();
        var epoch1 = Enumerable.Range(3, 3).SelectMany(p => order.IndicesAt(p)).ToList();
        Assert.Equal(9, epoch0.Distinct().Count());
        Assert.NotEqual(epoch0, epoch1);
        var again = new ShuffledOrder(10, 3, 7);
        Assert.Equal(epoch1, Enumerable.Range(3, 3).SelectMany(p => again.IndicesAt(p)));   // random access, no history needed
        Assert.Equal(epoch0, Enumerable.Range(0, 3).SelectMany(p => again.IndicesAt(p)));
        Assert.NotEqual(epoch0, Enumerable.Range(0, 3).SelectMany(p => new ShuffledOrder(10, 3, 8).IndicesAt(p)));
    }

    [Fact]
    public void A_sequential_source_refuses_to_skip()
    {
        int drawn = 0;
        var source = BatchSource.Sequential(() => drawn++);
        Assert.Equal(0, source.At(0));
        Assert.Contains("cannot resume", Assert.Throws<InvalidOperationException>(() => source.At(5)).Message);
    }
}

// Dropout draws from LibTorch's process-wide generator: no other test may draw from it while these compare runs bit for bit.
[Collection(ProcessStateCollection.Name)]
public class TrainerTests : IDisposable
{
    readonly string folder = Directory.CreateTempSubdirectory("trainer-tests-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    /// <summary>A tiny attention model with adapters on q and v; its mm_projector trains in a group of its own.</summary>
    static (TinyModel Model, AdapterHandle Adapters, TrainingStage Stage) Setup(AdapterConfig adapter, ScalarType dtype = ScalarType.Float32)
    {
        var model = new TinyModel(dtype: dtype);
        torch.manual_seed(3);
        var handle = AdapterInjection.Inject(model, adapter);
        var adapters = TrainingStage.AdaptersOnly(handle, 1e-2);
        var stage = new TrainingStage("stage2", [adapters.Groups[0], new GroupRule("projector", n => n.StartsWith("mm_projector."), 3e-3, WeightDecay: 0.01)]);
        return (model, handle, stage);
    }

    /// <summary>Batch at position p: 4 inputs and targets drawn from p alone.</summary>
    static IBatchSource<(Tensor X, Tensor Y)> Batches(ScalarType dtype = ScalarType.Float32) => BatchSource.Of(p =>
    {
        var generator = new Generator((ulong)(1000 + p));
        return (randn(4, 8, dtype: dtype, generator: generator), randn(4, 8, dtype: dtype, generator: generator));
    });

    static TrainingObjective<(Tensor X, Tensor Y)> Mse(TinyModel model) => new(b => nn.functional.mse_loss(model.call(b.X), b.Y), b => b.X.shape[0]);

    static Dictionary<string, Tensor> Trainable(nn.Module model) =>
        model.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.detach().clone());

    [Fact]
    public void Stopping_saving_and_resuming_in_a_new_model_ends_bit_identical_to_an_unbroken_run()
    {
        using var scope = NewDisposeScope();
        var options = new TrainerOptions(12) { Seed = 5, OutputFolder = Path.Combine(folder, "broken"), CheckpointEvery = 3, GradientAccumulation = 2, WarmupRatio = 0.2 };
        var adapter = new DualLoraConfig(Rank: 3, Dropout: 0.1);          // dropout: the random state must resume too

        var (whole, wholeAdapters, wholeStage) = Setup(adapter);
        using (var trainer = new Trainer<(Tensor, Tensor)>(whole, wholeStage, Mse(whole), options with { OutputFolder = Path.Combine(folder, "whole") }, wholeAdapters))
            trainer.Train(Batches());

        var (first, firstAdapters, firstStage) = Setup(adapter);
        using (var trainer = new Trainer<(Tensor, Tensor)>(first, firstStage, Mse(first), options, firstAdapters))
        {
            using var stop = new CancellationTokenSource();
            trainer.Progress += p => { if (p.Step == 7) stop.Cancel(); };        // step 7 runs, but its checkpoint would be step 9
            Assert.Throws<OperationCanceledException>(() => trainer.Train(Batches(), stop.Token));
        }
        Assert.Equal(["step-000003", "step-000006"], TrainingCheckpoint.List(options.OutputFolder!).Select(Path.GetFileName));

        var (second, secondAdapters, secondStage) = Setup(adapter);
        using (NewDisposeScope())
        {
            // A fresh model draws other dropout masks from here on, unless the random state is restored.
            torch.manual_seed(999);
        }
        using (var trainer = new Trainer<(Tensor, Tensor)>(second, secondStage, Mse(second), options, secondAdapters))
        {
            Assert.EndsWith("step-000006", trainer.ResumeFromLatest());
            Assert.Equal(6, trainer.Step);
            Assert.Equal(6, trainer.Train(Batches()).Count);
        }
        var expected = Trainable(whole);
        foreach (var (name, value) in Trainable(second)) TensorAssert.BitEqual(expected[name], value, name);

        var steps = File.ReadAllLines(Path.Combine(options.OutputFolder!, "metrics.jsonl")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!["step"]!.GetValue<int>());
        Assert.Equal(Enumerable.Range(1, 12), steps);                             // step 7 of the stopped run was dropped, then redone
        var lossesWhole = File.ReadAllLines(Path.Combine(folder, "whole", "metrics.jsonl")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!["loss"]!.GetValue<double>());
        var lossesResumed = File.ReadAllLines(Path.Combine(options.OutputFolder!, "metrics.jsonl")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!["loss"]!.GetValue<double>());
        Assert.Equal(lossesWhole, lossesResumed);
    }

    [Fact]
    public void A_checkpoint_holds_the_adapter_in_PEFTs_layout_and_the_other_weights_by_name()
    {
        using var scope = NewDisposeScope();
        var (model, adapters, stage) = Setup(new DualLoraConfig(Rank: 2, Dropout: 0));
        using var trainer = new Trainer<(Tensor, Tensor)>(model, stage, Mse(model), new TrainerOptions(2) { OutputFolder = folder, Seed = 1 }, adapters);
        trainer.Train(Batches());
        string checkpoint = TrainingCheckpoint.Latest(folder)!;
        var reloaded = new TinyModel();
        var handle = AdapterFiles.Load(reloaded, Path.Combine(checkpoint, TrainingCheckpoint.AdapterFolder));
        var trained = Trainable(model);
        foreach (var (name, parameter) in handle.AdapterNamedParameters()) TensorAssert.BitEqual(trained[name], parameter, name);
        using var weights = DualLora.IO.SafetensorsFile.Open(Path.Combine(checkpoint, TrainingCheckpoint.TrainableFile));
        Assert.Equal(["mm_projector.bias", "mm_projector.weight"], weights.Names.Order());
        TensorAssert.BitEqual(trained["mm_projector.weight"], weights.ReadTensor("mm_projector.weight"));
        var state = TrainingCheckpoint.ReadState(checkpoint);
        Assert.Equal((2, 2, 2L), (state.Step, state.TotalSteps, state.DataPosition));
        Assert.All(state.OptimizerSteps.Values, s => Assert.Equal(2, s));
    }

    [Fact]
    public void A_checkpoint_of_another_method_or_rank_is_refused_with_everything_that_does_not_fit()
    {
        using var scope = NewDisposeScope();
        var (model, adapters, stage) = Setup(new DualLoraConfig(Rank: 4, Dropout: 0));
        using (var trainer = new Trainer<(Tensor, Tensor)>(model, stage, Mse(model), new TrainerOptions(2) { OutputFolder = folder, Seed = 1 }, adapters))
            trainer.Train(Batches());

        var (other, otherAdapters, otherStage) = Setup(new LoraConfig(Rank: 2, Dropout: 0));
        using var resumed = new Trainer<(Tensor, Tensor)>(other, otherStage, Mse(other), new TrainerOptions(2) { OutputFolder = folder, Seed = 1 }, otherAdapters);
        var before = Trainable(other);
        var error = Assert.Throws<InvalidFileException>(() => resumed.ResumeFromLatest());
        Assert.Contains("step-000002: does not fit this run", error.Message);
        Assert.Contains("adapter peft_type: \"DUAL_LORA\" in the checkpoint, \"LORA\" in this run", error.Message);
        Assert.Contains("adapter r: 4 in the checkpoint, 2 in this run", error.Message);
        Assert.Contains("'layers.0.self_attn.q_proj.lora_T.weight' trains in the checkpoint, not in this run", error.Message);
        Assert.Contains("'layers.0.self_attn.q_proj.lora_A.weight' is [4, 8] in the checkpoint, [2, 8] in this run", error.Message);
        foreach (var (name, value) in Trainable(other)) TensorAssert.BitEqual(before[name], value, name);   // nothing was loaded
    }

    [Fact]
    public void A_NaN_loss_stops_before_the_weights_change_and_keeps_the_last_good_checkpoint()
    {
        using var scope = NewDisposeScope();
        var (model, adapters, stage) = Setup(new DualLoraConfig(Rank: 2, Dropout: 0));
        var mse = Mse(model);
        var poisoned = new TrainingObjective<(Tensor X, Tensor Y)>(b => mse.Loss(b) * (b.X.shape[0] == 5 ? double.NaN : 1.0));
        var batches = BatchSource.Of(p => p == 3 ? (randn(5, 8), randn(5, 8)) : Batches().At(p));
        using var trainer = new Trainer<(Tensor X, Tensor Y)>(model, stage, poisoned, new TrainerOptions(6) { OutputFolder = folder, CheckpointEvery = 1, Seed = 1 }, adapters);
        var error = Assert.Throws<TrainingDivergedException>(() => trainer.Train(batches));
        Assert.Contains("stage 'stage2', step 4: the loss is NaN", error.Message);
        Assert.Contains("step-000003", error.Message);
        Assert.EndsWith("step-000003", TrainingCheckpoint.Latest(folder));
        using var saved = DualLora.IO.SafetensorsFile.Open(Path.Combine(TrainingCheckpoint.Latest(folder)!, TrainingCheckpoint.TrainableFile));
        TensorAssert.BitEqual(saved.ReadTensor("mm_projector.weight"), model.mm_projector.weight!.detach());
    }

    [Fact]
    public void Two_accumulated_micro_batches_step_as_one_batch_of_both()
    {
        using var scope = NewDisposeScope();
        var options = new TrainerOptions(3) { Seed = 1, Schedule = ScheduleKind.Constant, WarmupRatio = 0 };
        var (split, splitAdapters, splitStage) = Setup(new DualLoraConfig(Rank: 2, Dropout: 0), ScalarType.Float64);
        var (joined, joinedAdapters, joinedStage) = Setup(new DualLoraConfig(Rank: 2, Dropout: 0), ScalarType.Float64);
        using (var trainer = new Trainer<(Tensor, Tensor)>(split, splitStage, Mse(split), options with { GradientAccumulation = 2 }, splitAdapters))
            trainer.Train(Batches(ScalarType.Float64));
        var halves = Batches(ScalarType.Float64);
        using (var trainer = new Trainer<(Tensor, Tensor)>(joined, joinedStage, Mse(joined), options, joinedAdapters))
            trainer.Train(BatchSource.Of(p => (cat([halves.At(2 * p).X, halves.At(2 * p + 1).X]), cat([halves.At(2 * p).Y, halves.At(2 * p + 1).Y]))));
        var expected = Trainable(joined);
        foreach (var (name, value) in Trainable(split))
            Assert.True(value.allclose(expected[name], rtol: 1e-12, atol: 1e-12), name);
    }

    [Fact]
    public void Gradients_are_clipped_to_the_global_norm_and_the_norm_before_clipping_is_reported()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(zeros(2));
        var model = new Holder(p);
        var stage = new TrainingStage("linear", [new GroupRule("p", _ => true, 0.1)]);
        var objective = new TrainingObjective<int>(_ => (p * tensor(new float[] { 3, 4 })).sum());   // the gradient is (3, 4): norm 5
        using var trainer = new Trainer<int>(model, stage, objective, new TrainerOptions(1) { MaxGradNorm = 1, WarmupRatio = 0 });
        var record = trainer.Train(BatchSource.Of(_ => 0)).Single();
        Assert.Equal(5, record.GradNorm, 5);
        Assert.True(p.grad!.allclose(tensor(new float[] { 0.6f, 0.8f }), rtol: 1e-5, atol: 1e-6), "the gradient is scaled to norm 1");
        Assert.Equal(0.1, record.LearningRate, 12);
    }

    [Fact]
    public void A_stage_whose_group_selects_nothing_or_overlaps_another_is_an_error()
    {
        using var scope = NewDisposeScope();
        var model = new TinyModel();
        var nothing = new TrainingStage("s", [new GroupRule("vision", n => n.StartsWith("vision_tower."), 1e-3)]);
        Assert.Contains("group(s) 'vision' select no parameter", Assert.Throws<ArgumentException>(() => nothing.Apply(model)).Message);
        var overlap = new TrainingStage("s", [new GroupRule("a", _ => true, 1e-3), new GroupRule("b", n => n.StartsWith("mm_projector."), 1e-3)]);
        Assert.Contains("'mm_projector.weight' is selected by groups 'a' and 'b'", Assert.Throws<ArgumentException>(() => overlap.Apply(model)).Message);
    }

    [Fact]
    public void An_incomplete_checkpoint_folder_is_never_taken_for_the_latest()
    {
        using var scope = NewDisposeScope();
        var (model, adapters, stage) = Setup(new DualLoraConfig(Rank: 2, Dropout: 0));
        using var trainer = new Trainer<(Tensor, Tensor)>(model, stage, Mse(model), new TrainerOptions(2) { OutputFolder = folder, Seed = 1 }, adapters);
        trainer.Train(Batches());
        Directory.CreateDirectory(Path.Combine(folder, TrainingCheckpoint.Folder, ".incomplete-step-000009"));
        Directory.CreateDirectory(TrainingCheckpoint.PathOf(folder, 8));          // no trainer_state.json: a copy cut short
        Assert.EndsWith("step-000002", TrainingCheckpoint.Latest(folder));
    }

    sealed class Holder : nn.Module
    {
        public Holder(Parameter p) : base(nameof(Holder)) => register_parameter("p", p);
    }
}
