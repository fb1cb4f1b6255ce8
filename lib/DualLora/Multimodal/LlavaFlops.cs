using DualLora.Adapters;

namespace DualLora.Multimodal;

/// <summary>Floating-point operations of one training step by part of the model (2 per multiply-add).</summary>
public sealed record StepFlops(double VisionTower, double Connector, double Decoder, double Head, double Adapters)
{
    public double Total => VisionTower + Connector + Decoder + Head + Adapters;
}

/// <summary>
/// The matrix products of a <see cref="LlavaModel"/> training step counted from its shapes (convolutions as the
/// products they are; attention's two products over the whole sequence, as scaled_dot_product_attention computes
/// them under a mask). Element-wise work, norms, softmax and VCE's bilinear sampling are not counted: they are a
/// small share of the arithmetic, however much of the time they take.
/// A product's backward pass costs one more product for its input's gradient when anything before it trains,
/// and one more for its weight's gradient when the weight trains. In stage 2 (adapters and connector train, the
/// rest frozen) that makes: the vision tower forward only (nothing before it trains); the connector's first
/// products twice (forward, weight gradient), its later ones three times; the decoder and head twice (forward,
/// input gradient: the image tokens come from the trainable connector), attention's products three times; the adapters
/// three times.
/// </summary>
public static class LlavaFlops
{
    /// <param name="config">The model.</param>
    /// <param name="adapter">The adapter on the decoder's q and v (<see cref="LlavaModel.DecoderQueryValue"/>).</param>
    /// <param name="batch">Samples in the batch.</param>
    /// <param name="textTokens">Text tokens of a sample, the image placeholder included.</param>
    public static StepFlops Stage2Step(LlavaConfig config, AdapterConfig adapter, int batch, int textTokens)
    {
        var v = config.Vision;
        var l = config.Language;
        double images = batch;
        // Multiply-adds of one forward pass, then the factor of the training step.
        double patches = v.NumPatches, tokens = patches + 1, c = v.HiddenSize;
        double towerLayer = tokens * (4 * c * c + 2 * c * v.IntermediateSize) + 2 * tokens * tokens * c;
        double tower = images * (patches * v.NumChannels * v.PatchSize * v.PatchSize * c + v.NumHiddenLayers * towerLayer);

        double d = l.HiddenSize;
        double connectorFirst, connectorLater;
        if (config.Vce is { } vce)
        {
            int levels = vce.LevelsFor(v.NumHiddenLayers).Count;
            double samples = vce.Heads * levels * vce.Points;
            // Offsets, attention weights and values read the tower's features; the output projection and the projector come after them.
            connectorFirst = images * (patches * c * (samples * 2 + samples) + levels * patches * c * c);
            connectorLater = images * patches * (c * c + c * d + d * d);
        }
        else
        {
            connectorFirst = images * patches * c * d;
            connectorLater = images * patches * d * d;
        }

        double sequence = textTokens - 1 + patches;
        double kv = (double)l.NumKeyValueHeads * l.HeadDim;
        double decoderLinear = images * l.NumHiddenLayers * sequence * (2 * d * d + 2 * d * kv + 3 * d * l.IntermediateSize);
        // Scores and weighted values; their backward needs both operands' gradients (four products).
        double decoderAttention = images * l.NumHiddenLayers * 2 * sequence * sequence * d;
        double head = images * sequence * d * l.VocabSize;
        // q and v of every layer (d -> d and d -> kv); an adapter's multiply-adds per token are its parameter count (each weight used once).
        double adapters = images * l.NumHiddenLayers * sequence * (adapter.ParameterCount(l.HiddenSize, l.HiddenSize) + adapter.ParameterCount(l.HiddenSize, (long)kv));

        return new StepFlops(2 * tower, 2 * (2 * connectorFirst + 3 * connectorLater), 2 * (2 * decoderLinear + 3 * decoderAttention), 2 * 2 * head, 2 * 3 * adapters);
    }
}
