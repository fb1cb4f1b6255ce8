using DualLora.Adapters;
using DualLora.Analysis;
using DualLora.Data;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Tests.Adapters;
using DualLora.Tests.Pipelines;
using DualLora.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Analysis;

public sealed class SkillSpaceActivationsTests : IDisposable
{
    // Answers of different lengths, so batches are padded.
    const string Samples = """
        [
          {"id": "n1", "image": "a.png", "task": "name", "conversations": [{"from": "human", "value": "<image>\nWhat is at the top left?"}, {"from": "gpt", "value": "shirt"}]},
          {"id": "n2", "image": "b.png", "task": "name", "conversations": [{"from": "human", "value": "<image>\nName it."}, {"from": "gpt", "value": "an ankle boot"}]},
          {"id": "n3", "image": "a.png", "task": "name", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "bag"}]}
        ]
        """;

    readonly TempFolder _folder = new();
    readonly LlavaInstructionData _data;
    readonly InstructionCollator _collator;
    readonly LlavaModel _model;

    public SkillSpaceActivationsTests()
    {
        TinyRun.WritePng(_folder.File("a.png"), 60);
        TinyRun.WritePng(_folder.File("b.png"), 200);
        File.WriteAllText(_folder.File("data.json"), Samples);
        _data = LlavaInstructionData.Load(_folder.File("data.json"));
        TinyRun.WriteTokenizer(_folder.File("tokenizer.model"), TinyRun.Alphabet);
        _collator = InstructionCollator.For(HuggingFaceModels.LoadTokenizer(_folder.Path), ImagePreprocessing.Grey(6));
        _model = Weights.Randomize(new LlavaModel(new LlavaConfig(
            new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3, NumChannels: 1),
            new LlamaConfig(VocabSize: 3 + TinyRun.Alphabet.Length, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1))), 3, 0.5);
    }

    public void Dispose()
    {
        _model.Dispose();
        _folder.Dispose();
    }

    [Fact]
    public void The_captured_input_is_what_the_layer_reads_and_its_subspaces_are_LN_of_Ax_and_ReLU_of_Tx()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyModel(width: 8, kvWidth: 4, depth: 2);
        var adapters = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 3, Dropout: 0.5) { TargetModules = ["q_proj"] });
        var x = randn(2, 5, 8, generator: new Generator(7));
        var layer = adapters.Layers.Single(l => l.Path == "layers.0.self_attn.q_proj");
        var dual = (DualLoraAdapter)layer.Layer.Adapter!;
        using (no_grad()) dual.lora_ln!.weight!.copy_(tensor(new float[] { 0.5f, 2f, -1f }));

        using (var capture = new AdapterInputCapture(adapters))
        {
            using (no_grad()) model.call(x);
            Assert.Equal(["layers.0.self_attn.q_proj", "layers.1.self_attn.q_proj"], capture.Inputs.Keys.Order());
            var read = model.mm_projector.call(x);      // layer 0's q_proj reads the projector's output
            TensorAssert.BitEqual(read, capture.Inputs[layer.Path], "captured x");

            var outputs = SkillSpaceActivations.Outputs(dual, capture.Inputs[layer.Path]);
            var (skill, task) = dual.Subspaces(read);
            TensorAssert.BitEqual(skill, outputs.Holistic, "s");
            TensorAssert.BitEqual(task, outputs.Gate!, "t");
            Assert.True((skill * task).allclose(outputs.Rectified!), "s ⊙ t");

            // Independently: LN over the ranks of A x (biased variance, eps 1e-5, times the LN weight) and ReLU of T x.
            var ax = read.matmul(dual.lora_A.weight.t());
            var normalised = (ax - ax.mean([-1], keepdim: true)) / (ax.var(-1, unbiased: false, keepdim: true) + 1e-5).sqrt() * dual.lora_ln.weight!;
            Assert.True(normalised.allclose(outputs.Holistic, rtol: 1e-4, atol: 1e-5), "s = LN(A x)");
            Assert.True(nn.functional.relu(read.matmul(dual.lora_T.weight.t())).allclose(outputs.Gate!, rtol: 1e-4, atol: 1e-6), "t = ReLU(T x)");
            Assert.Equal([2L, 5, 3], outputs.Rectified!.shape);
        }
        // Disposed: the hooks are gone, so a second pass records nothing and runs as before.
        using var after = new AdapterInputCapture(AdapterInjection.Inject(new TinyModel(), new LoraConfig(Rank: 2) { TargetModules = ["v_proj"] }));
        using (no_grad()) model.call(x);
        Assert.Empty(after.Inputs);
    }

    [Fact]
    public void LoRA_s_reference_is_A_x()
    {
        using var scope = NewDisposeScope();
        var lora = new LoraAdapter(6, 4, new LoraConfig(Rank: 3, Dropout: 0.5), CPU, ScalarType.Float64);
        var x = randn(4, 6, dtype: ScalarType.Float64, generator: new Generator(3));
        var outputs = SkillSpaceActivations.Outputs(lora, x);
        // A x by hand: row i of the output is Σ_k A[r, k] x[i, k].
        var a = lora.lora_A.weight.data<double>().ToArray();
        var xs = x.data<double>().ToArray();
        var holistic = outputs.Holistic.data<double>().ToArray();
        for (int i = 0; i < 4; i++)
            for (int r = 0; r < 3; r++)
                Assert.Equal(Enumerable.Range(0, 6).Sum(k => a[r * 6 + k] * xs[i * 6 + k]), holistic[i * 3 + r], 12);
        Assert.Null(outputs.Rectified);
        Assert.Null(outputs.Gate);
    }

    [Fact]
    public void Text_tokens_drop_the_image_tokens_and_the_padding()
    {
        using var scope = NewDisposeScope();
        long img = LlavaConfig.ImageTokenId;
        // Row 0: <s> <image> a b (no padding); row 1: <s> <image> a, then one pad. Two image tokens each.
        var batch = new MultimodalBatch(tensor(new long[] { 1, img, 5, 6, 1, img, 5, 0 }, [2, 4]), tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 0 }, [2, 4]), zeros(2, 1, 6, 6));
        var text = SkillSpaceActivations.TextTokens(batch, decoderLength: 5);
        Assert.Equal(new[] { true, false, false, true, true, true, false, false, true, false }, text.data<bool>().ToArray());
    }

    [Fact]
    public void Measure_counts_the_text_tokens_of_every_sample_and_every_value_in_the_histograms()
    {
        var adapters = AdapterInjection.Inject(_model, new DualLoraConfig(Rank: 4, Dropout: 0.3));
        _model.eval();
        var result = SkillSpaceActivations.Measure(_model, adapters, _collator, _data, "name", _data.Samples, new SkillSpaceOptions(BatchSize: 2, Bins: 10));

        long textTokens = _data.Samples.Sum(s => _collator.Tokenize(s).InputIds.Length - 1);   // all but the image placeholder
        Assert.Equal(adapters.Layers.Select(l => l.Path), result.Select(r => r.Layer));
        foreach (var layer in result)
        {
            Assert.Equal("name", layer.Task);
            Assert.Equal(textTokens, layer.Tokens);
            Assert.Equal(4, layer.Rank);
            Assert.Equal(textTokens * 4, layer.Holistic.Counts.Sum());
            Assert.Equal(textTokens * 4, layer.Rectified!.Counts.Sum());
            Assert.InRange(layer.HolisticEntropy, 0, Math.Log(4));
            Assert.InRange(layer.RectifiedEntropy!.Value, 0, Math.Log(4));
            Assert.All(layer.GateActive!, f => Assert.InRange(f, 0, 1));
            Assert.Equal(4, layer.RectifiedMagnitude!.Count);
        }
        Assert.False(_model.training);

        // The same in one batch of all three (padded differently): the batch-weighted means are the means over all tokens.
        using var scope = NewDisposeScope();
        using var capture = new AdapterInputCapture(adapters);
        var batch = _collator.Collate(_data, _data.Samples).Batch;
        using (no_grad()) _model.call(batch);
        var last = adapters.Layers[^1];
        var x = capture.Inputs[last.Path];
        var text = SkillSpaceActivations.TextTokens(batch, x.shape[1]);
        var outputs = SkillSpaceActivations.Outputs(last.Layer.Adapter!, x[text]);
        Assert.Equal(textTokens, outputs.Holistic.shape[0]);
        Assert.Equal(ActivationEntropy.Mean(outputs.Holistic), result[^1].HolisticEntropy, 5);
        Assert.Equal(ActivationEntropy.Mean(outputs.Rectified!), result[^1].RectifiedEntropy!.Value, 5);
        var gateActive = outputs.Gate!.gt(0).to(ScalarType.Float64).mean([0L]).data<double>().ToArray();
        Assert.Equal(gateActive, result[^1].GateActive!.ToArray());
    }

    [Fact]
    public void An_even_activation_has_entropy_log_r_and_a_one_hot_one_zero()
    {
        var adapters = AdapterInjection.Inject(_model, new LoraConfig(Rank: 3, Dropout: 0) { TargetRegex = @"language_model\.model\.layers\.\d+\.self_attn\.q_proj" });
        var paths = adapters.Layers.Select(l => l.Path).ToList();
        using (no_grad())
        {
            // Layer 0: all three rows of A equal, so A x is the same in every rank. Layer 1: only the first row, so one rank.
            var first = (LoraAdapter)adapters.Layers[0].Layer.Adapter!;
            first.lora_A.weight.copy_(ones(3, 8));
            var second = (LoraAdapter)adapters.Layers[1].Layer.Adapter!;
            second.lora_A.weight.zero_();
            second.lora_A.weight[0].fill_(1);
        }
        _model.train();
        var result = SkillSpaceActivations.Measure(_model, adapters, _collator, _data, "name", _data.Samples, new SkillSpaceOptions(BatchSize: 2));
        Assert.Equal(Math.Log(3), result[0].HolisticEntropy, 9);
        Assert.Equal(0, result[1].HolisticEntropy, 12);
        Assert.Null(result[0].Rectified);
        Assert.Null(result[0].RectifiedEntropy);
        Assert.True(_model.training, "the model's mode is restored");
    }

    [Fact]
    public void A_model_without_adapters_is_a_clear_error()
    {
        var error = Assert.Throws<ArgumentException>(() => SkillSpaceActivations.Measure(_model, null, _collator, _data, "name", _data.Samples));
        Assert.Contains("no adapters", error.Message);
    }

    [Fact]
    public void The_histogram_counts_every_value_once_values_outside_in_the_edge_bins()
    {
        var histogram = new ValueHistogram(-1, 1, 4);    // bins [-1, -0.5), [-0.5, 0), [0, 0.5), [0.5, 1]
        using (var values = tensor(new float[] { -3, -0.75f, -0.25f, 0, 0.1f, 0.6f, 1, 7 })) histogram.Add(values);
        using (var more = tensor(new float[] { 0.3f, -0.3f })) histogram.Add(more);
        Assert.Equal(new long[] { 2, 2, 3, 3 }, histogram.Counts);
        Assert.Equal(10, histogram.Total);
        Assert.Equal(2, histogram.Clipped);
        Assert.Equal(new[] { -0.75, -0.25, 0.25, 0.75 }, histogram.Centers);
        Assert.Equal(1, histogram.Densities.Sum() * histogram.BinWidth, 12);
    }

    [Fact]
    public void Task_profiles_that_use_the_same_ranks_in_proportion_have_cosine_one_and_disjoint_ones_zero()
    {
        Assert.Equal(1, SkillSpaceActivations.MeanPairwiseCosine([[1.0, 2, 0], [2.0, 4, 0]]), 12);
        Assert.Equal(0, SkillSpaceActivations.MeanPairwiseCosine([[1.0, 0, 0], [0.0, 3, 0]]), 12);
        // Pairs (1,2): 1, (1,3): 0, (2,3): 0.
        Assert.Equal(1.0 / 3, SkillSpaceActivations.MeanPairwiseCosine([[1.0, 0], [2.0, 0], [0.0, 1]]), 12);
        Assert.Contains("profile 1 is all zero", Assert.Throws<ArgumentException>(() => SkillSpaceActivations.MeanPairwiseCosine([[1.0, 0], [0.0, 0]])).Message);
    }
}
