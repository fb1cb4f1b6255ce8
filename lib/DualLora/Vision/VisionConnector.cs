using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Vision;

/// <summary>
/// What sits between the vision tower and the language model: optionally VCE, then LLaVA's <c>mlp2x_gelu</c>
/// projector (Linear(C → D), GELU, Linear(D → D)), with LLaVA's key names <c>mm_projector.0</c> and
/// <c>mm_projector.2</c>. Without VCE it projects the patch features of hidden state
/// <see cref="SelectLayer"/> (−2 in LLaVA-1.5), as LLaVA does; with VCE it projects the enhanced anchor map.
/// </summary>
public sealed class VisionConnector : nn.Module<Tensor, Tensor>
{
    public readonly VisualCueEnhancement? vce;
    public readonly Sequential mm_projector;

    public int SelectLayer { get; }
    /// <summary>The hidden-state indices VCE reads (negative from the end), anchor included; empty without VCE.</summary>
    public IReadOnlyList<int> Levels { get; }

    /// <param name="vision">The vision tower's config (its width and depth).</param>
    /// <param name="languageWidth">D, the language model's hidden size.</param>
    /// <param name="vceConfig">VCE's settings, or null for LLaVA's plain projector.</param>
    /// <param name="selectLayer">The hidden state LLaVA projects when there is no VCE.</param>
    /// <param name="dtype">The parameters' type.</param>
    public VisionConnector(ClipVisionConfig vision, long languageWidth, VceConfig? vceConfig, int selectLayer = -2, ScalarType? dtype = null) : base(nameof(VisionConnector))
    {
        SelectLayer = selectLayer;
        if (vceConfig is null)
        {
            Levels = [];
        }
        else
        {
            Levels = vceConfig.LevelsFor(vision.NumHiddenLayers);
            int anchor = Levels.ToList().IndexOf(vceConfig.AnchorLevel);
            if (anchor < 0) throw new ArgumentException($"VCE: the anchor level {vceConfig.AnchorLevel} is not among the levels [{string.Join(", ", Levels)}].");
            if (Levels.Any(l => l >= 0 || vision.NumHiddenLayers + 1 + l < 0))
                throw new ArgumentException($"VCE: levels [{string.Join(", ", Levels)}] must be negative indices within the encoder's {vision.NumHiddenLayers + 1} hidden states.");
            vce = new VisualCueEnhancement(vision.HiddenSize, Levels.Count, anchor, vceConfig, dtype);
        }
        mm_projector = nn.Sequential(
            ("0", nn.Linear(vision.HiddenSize, languageWidth, dtype: dtype)),
            ("1", nn.GELU()),
            ("2", nn.Linear(languageWidth, languageWidth, dtype: dtype)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor patchFeatures) => mm_projector.call(patchFeatures);

    /// <summary>The hidden states the connector reads (negative from the end): VCE's levels, or the one projected without VCE.</summary>
    public IReadOnlyList<int> ReadLevels => vce is null ? [SelectLayer] : Levels;

    /// <summary>Image tokens for the language model, (batch, patches, D), and VCE's output when VCE is on.</summary>
    public (Tensor Tokens, VceOutput? Vce) Connect(VisionOutput vision, int gridHeight, int gridWidth) =>
        Connect(ReadLevels.Select(l => vision.PatchFeatures(l)).ToList(), gridHeight, gridWidth);

    /// <param name="levelFeatures">The patch features (batch, patches, C) of each hidden state in <see cref="ReadLevels"/>, in order.</param>
    /// <param name="gridHeight">The patch grid's rows.</param>
    /// <param name="gridWidth">The patch grid's columns.</param>
    public (Tensor Tokens, VceOutput? Vce) Connect(IReadOnlyList<Tensor> levelFeatures, int gridHeight, int gridWidth)
    {
        if (levelFeatures.Count != ReadLevels.Count)
            throw new ArgumentException($"the connector reads {ReadLevels.Count} hidden states [{string.Join(", ", ReadLevels)}], got {levelFeatures.Count}.", nameof(levelFeatures));
        if (vce is null) return (mm_projector.call(levelFeatures[0]), null);
        var output = vce.Enhance(levelFeatures, gridHeight, gridWidth);
        return (mm_projector.call(output.Enhanced), output);
    }
}
