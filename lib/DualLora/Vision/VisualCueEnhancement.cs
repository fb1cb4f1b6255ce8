using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Vision;

/// <summary>
/// Settings of <see cref="VisualCueEnhancement"/> (METHOD.md §3).
/// </summary>
/// <param name="Levels">Hidden-state indices of the encoder to read, negative from the end; null: four levels evenly spaced from −2 down, scaled to the encoder's depth (−2, −8, −14, −20 for 24 layers).</param>
/// <param name="AnchorLevel">The level whose map is the query and is enhanced: −2, the high-level map, as the paper describes (the released code takes its shallowest level).</param>
/// <param name="Heads">Attention heads (16 in the paper).</param>
/// <param name="Points">Sampling points per head and level (4 in the paper).</param>
/// <param name="OutputNorm">Apply a LayerNorm to anchor + f* (the released code computes one and discards it; off by default).</param>
public sealed record VceConfig(IReadOnlyList<int>? Levels = null, int AnchorLevel = -2, int Heads = 16, int Points = 4, bool OutputNorm = false)
{
    /// <summary>The levels for an encoder of <paramref name="depth"/> layers.</summary>
    public IReadOnlyList<int> LevelsFor(int depth)
    {
        if (Levels != null) return Levels;
        int step = Math.Max(1, depth / 4);
        return Enumerable.Range(0, 4).Select(i => -2 - i * step).Where(l => depth + 1 + l >= 0).ToList();
    }
}

/// <summary>What VCE computed, for the notebooks' figures as well as for the model.</summary>
/// <param name="Enhanced">x = anchor + f* (LayerNorm'd if configured): (batch, patches, C), what goes to the projector.</param>
/// <param name="Cue">f*: the aggregated local detail, (batch, patches, C).</param>
/// <param name="SamplingLocations">Where each query sampled, in [0, 1] image coordinates (x right, y down): (batch, patches, heads, levels, points, 2).</param>
/// <param name="AttentionWeights">The weight of each sample, summing to 1 over levels and points per head: (batch, patches, heads, levels, points).</param>
public sealed record VceOutput(Tensor Enhanced, Tensor Cue, Tensor SamplingLocations, Tensor AttentionWeights);

/// <summary>
/// Visual Cue Enhancement: multi-scale deformable cross-attention (Deformable DETR's MSDeformAttn) from the
/// high-level anchor map of the vision encoder to several of its levels, so each patch gathers local
/// detail before the projector:
/// <code>
///   q = LN(anchor)   f = LN(levels)   value = value_proj(f), split into heads
///   offsets = sampling_offsets(q)   weights = softmax over levels·points of attention_weights(q)
///   location = reference + offset / (W, H)        (offsets in grid cells; bilinear, zero padding)
///   f* = output_proj(Σ_levels,points weight · value(location))   x = anchor + f*
/// </code>
/// All levels share the anchor's grid (H x W), which need not be square.
/// </summary>
public sealed class VisualCueEnhancement : nn.Module<Tensor, Tensor>
{
    public readonly LayerNorm query_norm, feature_norm;
    public readonly LayerNorm? output_norm;
    public readonly Linear sampling_offsets, attention_weights, value_proj, output_proj;
    readonly int heads, levels, points;
    readonly long channels;

    public VceConfig Config { get; }
    public int AnchorIndex { get; }

    /// <param name="channels">C, the encoder's width.</param>
    /// <param name="levelCount">How many levels will be passed to <see cref="Enhance"/>.</param>
    /// <param name="anchorIndex">Which of those levels is the anchor.</param>
    /// <param name="config">Heads, points and the output norm switch.</param>
    /// <param name="dtype">The parameters' type.</param>
    public VisualCueEnhancement(long channels, int levelCount, int anchorIndex, VceConfig config, ScalarType? dtype = null) : base(nameof(VisualCueEnhancement))
    {
        if (channels % config.Heads != 0) throw new ArgumentException($"heads: the width {channels} is not divisible by {config.Heads} heads.");
        if (anchorIndex < 0 || anchorIndex >= levelCount) throw new ArgumentException($"anchor: level {anchorIndex} is not one of the {levelCount} levels.");
        Config = config;
        AnchorIndex = anchorIndex;
        this.channels = channels;
        heads = config.Heads; levels = levelCount; points = config.Points;
        query_norm = nn.LayerNorm(channels, 1e-6, dtype: dtype);
        feature_norm = nn.LayerNorm(channels, 1e-6, dtype: dtype);
        if (config.OutputNorm) output_norm = nn.LayerNorm(channels, 1e-6, dtype: dtype);
        sampling_offsets = nn.Linear(channels, heads * levels * points * 2, dtype: dtype);
        attention_weights = nn.Linear(channels, heads * levels * points, dtype: dtype);
        value_proj = nn.Linear(channels, channels, dtype: dtype);
        output_proj = nn.Linear(channels, channels, dtype: dtype);
        ResetParameters();
        RegisterComponents();
    }

    /// <summary>
    /// Deformable DETR's initialisation: offsets start on a ring, head h pointing along the angle 2πh/heads
    /// (scaled so the larger component is 1) and point k at distance k + 1; uniform attention; value and
    /// output projections Xavier-uniform with zero bias.
    /// </summary>
    void ResetParameters()
    {
        using var _ = no_grad();
        nn.init.zeros_(sampling_offsets.weight);
        var angles = arange(heads, dtype: ScalarType.Float64) * (2 * Math.PI / heads);
        var direction = stack([angles.cos(), angles.sin()], -1);
        direction = direction / direction.abs().max(-1, keepdim: true).values;                         // (heads, 2)
        var ring = direction.view(heads, 1, 1, 2).repeat(1, levels, points, 1)
                   * arange(1, points + 1, dtype: ScalarType.Float64).view(1, 1, points, 1);           // (heads, levels, points, 2)
        sampling_offsets.bias!.copy_(ring.flatten());
        nn.init.zeros_(attention_weights.weight);
        nn.init.zeros_(attention_weights.bias);
        nn.init.xavier_uniform_(value_proj.weight);
        nn.init.zeros_(value_proj.bias);
        nn.init.xavier_uniform_(output_proj.weight);
        nn.init.zeros_(output_proj.bias);
    }

    public override Tensor forward(Tensor input) => throw new NotSupportedException("Call Enhance with the level maps and the grid size.");

    /// <param name="levelMaps">One (batch, H·W, C) map per level, patches row by row, all on the same grid.</param>
    /// <param name="height">H, the grid's rows.</param>
    /// <param name="width">W, the grid's columns.</param>
    public VceOutput Enhance(IReadOnlyList<Tensor> levelMaps, int height, int width)
    {
        if (levelMaps.Count != levels) throw new ArgumentException($"VCE was built for {levels} levels, got {levelMaps.Count}.");
        var anchor = levelMaps[AnchorIndex];
        long batch = anchor.shape[0], patches = anchor.shape[1];
        if (patches != (long)height * width) throw new ArgumentException($"the maps hold {patches} patches, not {height} x {width}.");
        long headWidth = channels / heads;

        var query = query_norm.call(anchor);
        var offsets = sampling_offsets.call(query).view(batch, patches, heads, levels, points, 2);
        var weights = nn.functional.softmax(attention_weights.call(query).view(batch, patches, heads, levels * points), -1)
            .view(batch, patches, heads, levels, points);

        // Reference point of patch (i, j): its centre ((j + 0.5) / W, (i + 0.5) / H).
        var device = anchor.device;
        var rows = (arange(height, dtype: anchor.dtype, device: device) + 0.5) / height;
        var columns = (arange(width, dtype: anchor.dtype, device: device) + 0.5) / width;
        var reference = stack([columns.repeat(height), rows.repeat_interleave(width)], -1);          // (H·W, 2) as (x, y)
        var scale = tensor(new double[] { width, height }, dtype: anchor.dtype, device: device);
        var locations = reference.view(1, patches, 1, 1, 1, 2) + offsets / scale;

        var values = value_proj.call(feature_norm.call(cat(levelMaps.ToArray(), 1)))                  // LN over the concatenation of all levels
            .view(batch, levels, height, width, heads, headWidth);
        // grid_sample reads [-1, 1] with align_corners false: -1 is the left edge of the first cell.
        var grid = (2 * locations - 1).permute(0, 2, 3, 1, 4, 5);                                       // (batch, heads, levels, patches, points, 2)
        Tensor? sum = null;
        for (int level = 0; level < levels; level++)
        {
            var value = values[.., level].permute(0, 3, 4, 1, 2).reshape(batch * heads, headWidth, height, width);
            var levelGrid = grid[.., .., level].reshape(batch * heads, patches, points, 2);
            var sampled = nn.functional.grid_sample(value, levelGrid, mode: GridSampleMode.Bilinear,
                padding_mode: GridSamplePaddingMode.Zeros, align_corners: false);                       // (batch·heads, headWidth, patches, points)
            var levelWeights = weights[.., .., .., level].permute(0, 2, 1, 3).reshape(batch * heads, 1, patches, points);
            var term = (sampled * levelWeights).sum(-1);                                                 // (batch·heads, headWidth, patches)
            sum = sum is null ? term : sum + term;
        }
        var gathered = sum!.view(batch, heads * headWidth, patches).transpose(1, 2);                     // heads concatenated
        var cue = output_proj.call(gathered);
        var enhanced = anchor + cue;
        if (output_norm is not null) enhanced = output_norm.call(enhanced);
        return new VceOutput(enhanced, cue, locations, weights);
    }
}
