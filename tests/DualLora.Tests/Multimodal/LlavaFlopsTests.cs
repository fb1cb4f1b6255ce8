using DualLora.Adapters;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Vision;

namespace DualLora.Tests.Multimodal;

public class LlavaFlopsTests
{
    [Fact]
    public void A_tiny_models_stage_2_step_counts_as_worked_out_by_hand()
    {
        // Tower: width 8, MLP 16, 4 layers, 6 x 6 grey images in 3 x 3 patches (4 patches, 5 tokens).
        // Decoder: width 8, MLP 16, 2 layers, 2 heads of 4 sharing 1 key/value head (kv width 4), vocabulary 13.
        var config = new LlavaConfig(
            new ClipVisionConfig(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 4, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 3, NumChannels: 1),
            new LlamaConfig(VocabSize: 13, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1));
        var flops = LlavaFlops.Stage2Step(config, new LoraConfig(Rank: 2), batch: 1, textTokens: 3);

        // Patch embedding 4 x 9 x 8 = 288; a layer 5 x (4 x 64 + 2 x 8 x 16) + 2 x 25 x 8 = 2,960; forward only.
        Assert.Equal(2 * (288 + 4 * 2960), flops.VisionTower);
        // Projector 4 x 8 x 8 reads the tower (forward and weight gradient), then 4 x 8 x 8 (and the input's gradient).
        Assert.Equal(2 * (2 * 256 + 3 * 256), flops.Connector);
        // Sequence 3 - 1 + 4 = 6; per layer 6 x (2 x 64 + 2 x 8 x 4 + 3 x 8 x 16) = 3,456 (twice: forward, input gradient)
        // and attention 2 x 36 x 8 = 576 (three times).
        Assert.Equal(2 * (2 * 2 * 3456 + 3 * 2 * 576), flops.Decoder);
        Assert.Equal(2 * 2 * (6 * 8 * 13), flops.Head);
        // LoRA r = 2 on q (8 -> 8: 32 weights) and v (8 -> 4: 24 weights) of 2 layers, one multiply-add per weight and token.
        Assert.Equal(2 * 3 * (2 * 6 * (32 + 24)), flops.Adapters);
        Assert.Equal(flops.VisionTower + flops.Connector + flops.Decoder + flops.Head + flops.Adapters, flops.Total);
    }

    [Fact]
    public void The_count_grows_with_the_batch_and_VCE_adds_to_the_connector_alone()
    {
        var plain = LlavaConfig.Small(withVce: false);
        var enhanced = LlavaConfig.Small(withVce: true);
        var adapter = new DualLoraConfig(Rank: 16);
        var one = LlavaFlops.Stage2Step(plain, adapter, 1, 32);
        var eight = LlavaFlops.Stage2Step(plain, adapter, 8, 32);
        Assert.Equal(8 * one.Total, eight.Total, 6);
        var withVce = LlavaFlops.Stage2Step(enhanced, adapter, 8, 32);
        Assert.True(withVce.Connector > eight.Connector);
        Assert.Equal((eight.VisionTower, eight.Decoder, eight.Head, eight.Adapters), (withVce.VisionTower, withVce.Decoder, withVce.Head, withVce.Adapters));
    }
}
