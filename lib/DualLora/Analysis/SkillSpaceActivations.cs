using DualLora.Adapters;
using DualLora.Data;
using DualLora.Multimodal;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Analysis;

/// <summary>The value range and bins of the histograms, and the batch size of the forward passes.</summary>
public sealed record SkillSpaceOptions(int BatchSize = 16, double HistogramLow = -4, double HistogramHigh = 4, int Bins = 80);

/// <summary>
/// What one adapted layer computed on the text tokens of one task's samples (METHOD.md §5). For Dual-LoRA the
/// holistic output is s = LN(A x), the rectified output s ⊙ t with t = ReLU(T x); for LoRA the holistic output is
/// A x and there is no rectified output (its fields are null). Entropies are <see cref="ActivationEntropy"/>'s mean
/// over the tokens, in nats (log r for an even activation, 0 for one rank); the per-rank lists have one entry per rank:
/// the mean |value| over the tokens, and for Dual-LoRA the fraction of tokens whose gate t_i is above 0.
/// </summary>
public sealed record SkillSpaceLayerActivations(
    string Task, string Layer, long Tokens,
    ValueHistogram Holistic, ValueHistogram? Rectified,
    double HolisticEntropy, double? RectifiedEntropy,
    IReadOnlyList<double> HolisticMagnitude, IReadOnlyList<double>? RectifiedMagnitude, IReadOnlyList<double>? GateActive)
{
    public int Rank => HolisticMagnitude.Count;
}

/// <summary>
/// The skill-space analysis of METHOD.md §5 on a LLaVA model with adapters: samples of one task run through the
/// model teacher-forced (the collator's batch of prompt and answer, no generation), an <see cref="AdapterInputCapture"/>
/// records every adapted layer's input x, and each layer's adapter maps it to its subspace outputs
/// (<see cref="Outputs"/>). Counted are the text tokens: &lt;s&gt;, the template, the instruction, the answer and &lt;/s&gt;;
/// not the image tokens (they are the same for every task asked of a scene) and not padding.
/// The model runs in eval mode (no dropout) and without gradients; its mode is restored afterwards.
/// </summary>
public static class SkillSpaceActivations
{
    /// <summary>One layer's subspace outputs for inputs x (..., d_in), each (..., r), in eval mode.</summary>
    public readonly record struct SubspaceOutputs(Tensor Holistic, Tensor? Rectified, Tensor? Gate);

    /// <summary>Dual-LoRA: (s, s ⊙ t, t) from <see cref="DualLoraAdapter.Subspaces"/>; LoRA: (A x, null, null).</summary>
    public static SubspaceOutputs Outputs(Adapter adapter, Tensor x)
    {
        switch (adapter)
        {
            case DualLoraAdapter dual:
                var (skill, task) = dual.Subspaces(x, training: false);
                return new(skill, skill * task, task);
            case LoraAdapter lora:
                return new(lora.lora_A.call(x), null, null);
            default:
                throw new ArgumentException($"the skill-space analysis reads Dual-LoRA's and LoRA's subspaces; {adapter.GetType().Name} has neither.");
        }
    }

    /// <summary>
    /// Which of the decoder's positions (batch, <paramref name="decoderLength"/>) are text tokens: the batch's
    /// attention mask with each sequence's image placeholder widened to the image's tokens (decoderLength − length + 1
    /// of them, as <see cref="LlavaModel.Prepare"/> splices them) and those set to false.
    /// </summary>
    public static Tensor TextTokens(MultimodalBatch batch, long decoderLength)
    {
        using var scope = NewDisposeScope();
        var ids = batch.InputIds;
        long length = ids.shape[1], imageTokens = decoderLength - length + 1;
        var isImage = ids.eq(LlavaConfig.ImageTokenId);
        var text = batch.AttentionMask.to(ScalarType.Bool).logical_and(isImage.logical_not());
        var at = isImage.to(ScalarType.Int64).argmax(1).data<long>().ToArray();
        var rows = at.Select((position, b) => cat([text[b, ..(int)position], zeros(imageTokens, ScalarType.Bool, ids.device), text[b, (int)(position + 1)..]], 0));
        return stack(rows.ToArray()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs <paramref name="samples"/> (of one <paramref name="task"/>) through <paramref name="model"/> in batches and
    /// returns, per adapted layer in the handle's order, the histograms, entropies and per-rank statistics of its outputs.
    /// </summary>
    public static IReadOnlyList<SkillSpaceLayerActivations> Measure(LlavaModel model, AdapterHandle? adapters, InstructionCollator collator,
        LlavaInstructionData data, string task, IReadOnlyList<InstructionSample> samples, SkillSpaceOptions? options = null)
    {
        if (adapters is null || adapters.Layers.Count == 0)
            throw new ArgumentException("the model has no adapters: the skill-space analysis reads the subspaces of an injected Dual-LoRA or LoRA.", nameof(adapters));
        if (samples.Count == 0) throw new ArgumentException($"no samples of task \"{task}\" to measure.", nameof(samples));
        options ??= new SkillSpaceOptions();
        var layers = adapters.Layers.Select(l => new LayerStatistics(l.Path, l.Layer.Adapter!, options)).ToList();
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            using var capture = new AdapterInputCapture(adapters);
            foreach (var chunk in samples.Chunk(options.BatchSize))
            {
                using var scope = NewDisposeScope();
                var batch = collator.Collate(data, chunk).Batch with { Labels = null };
                model.call(batch);
                foreach (var layer in layers)
                {
                    var x = capture.Inputs.TryGetValue(layer.Path, out var input) ? input
                        : throw new InvalidOperationException($"the adapted layer {layer.Path} did not run in the model's forward pass: the adapters belong to another model.");
                    var text = TextTokens(batch, x.shape[1]);
                    layer.Add(x[text]);      // (tokens, d_in)
                }
                capture.Clear();
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return layers.Select(l => l.Result(task)).ToList();
    }

    /// <summary>
    /// The mean cosine similarity over all pairs of <paramref name="profiles"/> (e.g. the tasks' per-rank mean |value|):
    /// 1 when every task uses the ranks in the same proportions, lower the more the tasks use different ranks.
    /// </summary>
    public static double MeanPairwiseCosine(IReadOnlyList<IReadOnlyList<double>> profiles)
    {
        if (profiles.Count < 2) throw new ArgumentException("a similarity between tasks needs at least two profiles.", nameof(profiles));
        static double Norm(IReadOnlyList<double> v) => Math.Sqrt(v.Sum(x => x * x));
        double sum = 0;
        int pairs = 0;
        for (int i = 0; i < profiles.Count; i++)
            for (int j = i + 1; j < profiles.Count; j++)
            {
                if (profiles[i].Count != profiles[j].Count) throw new ArgumentException($"profile {i} has {profiles[i].Count} ranks, profile {j} {profiles[j].Count}.", nameof(profiles));
                double norms = Norm(profiles[i]) * Norm(profiles[j]);
                if (norms == 0) throw new ArgumentException($"profile {(Norm(profiles[i]) == 0 ? i : j)} is all zero: it has no direction to compare.", nameof(profiles));
                sum += profiles[i].Zip(profiles[j], (a, b) => a * b).Sum() / norms;
                pairs++;
            }
        return sum / pairs;
    }

    /// <summary>One layer's running sums over the batches.</summary>
    sealed class LayerStatistics(string path, Adapter adapter, SkillSpaceOptions options)
    {
        public string Path { get; } = path;
        readonly ValueHistogram holistic = new(options.HistogramLow, options.HistogramHigh, options.Bins);
        readonly ValueHistogram rectified = new(options.HistogramLow, options.HistogramHigh, options.Bins);
        long tokens;
        double holisticEntropySum, rectifiedEntropySum;
        double[]? holisticMagnitude, rectifiedMagnitude, gateActive;
        bool hasRectified;

        public void Add(Tensor x)
        {
            long n = x.shape[0];
            if (n == 0) return;
            var (skill, rectifiedOutput, gate) = Outputs(adapter, x);
            holistic.Add(skill);
            holisticEntropySum += n * ActivationEntropy.Mean(skill);
            Accumulate(ref holisticMagnitude, skill.abs().sum(dim: 0));
            if (rectifiedOutput is not null && gate is not null)
            {
                hasRectified = true;
                rectified.Add(rectifiedOutput);
                rectifiedEntropySum += n * ActivationEntropy.Mean(rectifiedOutput);
                Accumulate(ref rectifiedMagnitude, rectifiedOutput.abs().sum(dim: 0));
                Accumulate(ref gateActive, gate.gt(0).sum(dim: 0));
            }
            tokens += n;
        }

        static void Accumulate(ref double[]? sums, Tensor perRank)
        {
            var values = perRank.to(ScalarType.Float64).data<double>().ToArray();
            sums ??= new double[values.Length];
            for (int i = 0; i < values.Length; i++) sums[i] += values[i];
        }

        public SkillSpaceLayerActivations Result(string task)
        {
            if (tokens == 0) throw new InvalidOperationException($"task \"{task}\": no text tokens reached {Path}.");
            IReadOnlyList<double>? Mean(double[]? sums) => sums?.Select(s => s / tokens).ToArray();
            return new SkillSpaceLayerActivations(task, Path, tokens,
                holistic, hasRectified ? rectified : null,
                holisticEntropySum / tokens, hasRectified ? rectifiedEntropySum / tokens : null,
                Mean(holisticMagnitude)!, Mean(rectifiedMagnitude), Mean(gateActive));
        }
    }
}
