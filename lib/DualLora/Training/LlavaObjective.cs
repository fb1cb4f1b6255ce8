using DualLora.Adapters;
using DualLora.Multimodal;
using static TorchSharp.torch;

namespace DualLora.Training;

/// <summary>The training objective of a <see cref="LlavaModel"/>: next-token cross-entropy on the answers, plus the adapters' auxiliary losses when on.</summary>
public static class LlavaObjective
{
    /// <param name="model">The model; each batch is moved to its device, the pixels to its type.</param>
    /// <param name="adapters">The injected adapters, whose auxiliary losses (a mixture's load balancing or L1) are added; null for none.</param>
    public static TrainingObjective<MultimodalBatch> For(LlavaModel model, AdapterHandle? adapters = null)
    {
        var first = model.parameters().First();
        var (device, dtype) = (first.device, first.dtype);
        long imageTokens = model.Config.Vision.NumPatches;
        return new TrainingObjective<MultimodalBatch>(
            batch =>
            {
                var loss = model.call(OnDevice(batch, device, dtype)).Loss ?? throw new ArgumentException("a training batch needs labels.");
                return adapters?.AuxiliaryLoss() is { } auxiliary ? loss + auxiliary : loss;
            },
            // The decoder's sequence: the text tokens with each placeholder replaced by the image's tokens.
            batch => batch.AttentionMask.sum().item<long>() + batch.InputIds.shape[0] * (imageTokens - 1));
    }

    /// <summary>The batch on <paramref name="device"/> with pixels of type <paramref name="dtype"/> (the same batch when it is so already).</summary>
    public static MultimodalBatch OnDevice(MultimodalBatch batch, Device device, ScalarType dtype) =>
        batch.InputIds.device == device && batch.Pixels.dtype == dtype ? batch
            : new MultimodalBatch(batch.InputIds.to(device), batch.AttentionMask.to(device), batch.Pixels.to(dtype, device), batch.Labels?.to(device));
}
