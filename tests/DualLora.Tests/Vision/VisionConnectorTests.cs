using DualLora.Vision;
using static TorchSharp.torch;

namespace DualLora.Tests.Vision;

public class VisionConnectorTests
{
    static readonly ClipVisionConfig Tiny = new(HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 4, NumAttentionHeads: 2, ImageSize: 6, PatchSize: 2, NumChannels: 1);

    [Fact]
    public void Without_VCE_the_projector_maps_LLaVAs_selected_features()
    {
        using var scope = NewDisposeScope();
        var tower = new ClipVisionModel(Tiny);
        var connector = new VisionConnector(Tiny, languageWidth: 12, vceConfig: null);
        Assert.Equal(["mm_projector.0.weight", "mm_projector.0.bias", "mm_projector.2.weight", "mm_projector.2.bias"], connector.state_dict().Keys.ToList());
        var vision = tower.Encode(randn(2, 1, 6, 6));
        var (tokens, vce) = connector.Connect(vision, 3, 3);
        Assert.Null(vce);
        var features = vision.HiddenStates[^2][.., 1..];
        var expected = nn.functional.linear(nn.functional.gelu(nn.functional.linear(features, connector.mm_projector.state_dict()["0.weight"], connector.mm_projector.state_dict()["0.bias"])),
            connector.mm_projector.state_dict()["2.weight"], connector.mm_projector.state_dict()["2.bias"]);
        Assert.True(tokens.allclose(expected, rtol: 1e-6, atol: 1e-6));
        Assert.Equal(new long[] { 2, 9, 12 }, tokens.shape);
    }

    [Fact]
    public void With_VCE_the_projector_maps_the_enhanced_anchor()
    {
        using var scope = NewDisposeScope();
        var tower = new ClipVisionModel(Tiny);
        var connector = new VisionConnector(Tiny, languageWidth: 12, vceConfig: new VceConfig(Heads: 2, Points: 2));
        Assert.Equal([-2, -3, -4, -5], connector.Levels);
        var vision = tower.Encode(randn(2, 1, 6, 6));
        var (tokens, vce) = connector.Connect(vision, 3, 3);
        Assert.NotNull(vce);
        Assert.True(vce!.Enhanced.allclose(vision.PatchFeatures(-2) + vce.Cue, rtol: 1e-6, atol: 1e-6));
        Assert.True(tokens.allclose(connector.mm_projector.call(vce.Enhanced)));
        Assert.Contains("vce.sampling_offsets.weight", connector.state_dict().Keys);
    }

    [Fact]
    public void A_missing_anchor_or_a_level_beyond_the_encoder_is_a_clear_error()
    {
        Assert.Contains("anchor level -2 is not among", Assert.Throws<ArgumentException>(() => new VisionConnector(Tiny, 12, new VceConfig(Levels: [-1, -3], Heads: 2))).Message);
        Assert.Contains("within the encoder's 5 hidden states", Assert.Throws<ArgumentException>(() => new VisionConnector(Tiny, 12, new VceConfig(Levels: [-2, -9], Heads: 2))).Message);
    }
}
