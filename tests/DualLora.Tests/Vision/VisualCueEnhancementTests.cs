using DualLora.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Tests.Vision;

public class VisualCueEnhancementTests
{
    [Fact]
    public void At_the_papers_width_VCE_has_about_2_9_million_parameters()
    {
        using var scope = NewDisposeScope();
        var vce = new VisualCueEnhancement(1024, 4, 0, new VceConfig());
        // offsets 1024·512 + 512, weights 1024·256 + 256, value and output 2·(1024² + 1024), two LayerNorms 2·2048.
        Assert.Equal(524_800 + 262_400 + 2 * 1_049_600 + 4_096, vce.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void The_default_levels_are_evenly_spaced_from_minus_two()
    {
        Assert.Equal([-2, -8, -14, -20], new VceConfig().LevelsFor(24));
        Assert.Equal([-2, -4, -6, -8], new VceConfig().LevelsFor(8));
        Assert.Equal([-1, -5], new VceConfig(Levels: [-1, -5]).LevelsFor(8));
    }

    [Fact]
    public void At_initialisation_attention_is_uniform_and_head_h_samples_along_its_angle()
    {
        using var scope = NewDisposeScope();
        var vce = new VisualCueEnhancement(16, 2, 0, new VceConfig(Heads: 4, Points: 3), ScalarType.Float64);
        var maps = new[] { randn(1, 12, 16, dtype: ScalarType.Float64), randn(1, 12, 16, dtype: ScalarType.Float64) };
        var output = vce.Enhance(maps, height: 3, width: 4);
        Assert.True(output.AttentionWeights.allclose(full_like(output.AttentionWeights, 1.0 / 6)));
        // Patch 5 is (row 1, column 1): reference (1.5/4, 1.5/3). Head 1 points along 90°: (0, 1) · (k + 1) cells.
        var locations = output.SamplingLocations[0, 5, 1, 0];
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(1.5 / 4, locations[k, 0].item<double>(), 12);
            Assert.Equal((1.5 + k + 1) / 3, locations[k, 1].item<double>(), 12);
        }
    }

    /// <summary>
    /// VCE written out point by point: bilinear sampling at pixel coordinates (x·W − 0.5, y·H − 0.5) with zero
    /// outside the grid (grid_sample's align_corners = false and zero padding), weighted sums per head.
    /// </summary>
    static Tensor ReferenceCue(VisualCueEnhancement vce, Tensor[] maps, int height, int width, VceOutput output)
    {
        var p = vce.state_dict();
        Tensor Norm(Tensor t, string name) => (t - t.mean([-1], keepdim: true)) / (t.var([-1], unbiased: false, keepdim: true) + 1e-6).sqrt() * p[name + ".weight"] + p[name + ".bias"];
        int levels = maps.Length, heads = vce.Config.Heads, points = vce.Config.Points;
        long channels = maps[0].shape[2], headWidth = channels / heads, patches = height * width;
        var values = maps.Select(m => Norm(m[0], "feature_norm").matmul(p["value_proj.weight"].t()) + p["value_proj.bias"]).ToArray();   // (patches, C) per level
        double At(int level, int row, int column, long channel) =>
            row < 0 || row >= height || column < 0 || column >= width ? 0 : values[level][row * width + column, channel].item<double>();
        var gathered = zeros(patches, channels, dtype: ScalarType.Float64);
        var locations = output.SamplingLocations[0];
        var weights = output.AttentionWeights[0];
        for (int n = 0; n < patches; n++)
            for (int h = 0; h < heads; h++)
                for (int l = 0; l < levels; l++)
                    for (int k = 0; k < points; k++)
                    {
                        double x = locations[n, h, l, k, 0].item<double>() * width - 0.5, y = locations[n, h, l, k, 1].item<double>() * height - 0.5;
                        int x0 = (int)Math.Floor(x), y0 = (int)Math.Floor(y);
                        double fx = x - x0, fy = y - y0, w = weights[n, h, l, k].item<double>();
                        for (long c = h * headWidth; c < (h + 1) * headWidth; c++)
                        {
                            double sample = (1 - fx) * (1 - fy) * At(l, y0, x0, c) + fx * (1 - fy) * At(l, y0, x0 + 1, c)
                                          + (1 - fx) * fy * At(l, y0 + 1, x0, c) + fx * fy * At(l, y0 + 1, x0 + 1, c);
                            gathered[n, c] += w * sample;
                        }
                    }
        return gathered.matmul(p["output_proj.weight"].t()) + p["output_proj.bias"];
    }

    [Theory]
    [InlineData(3, 3)]
    [InlineData(2, 5)]
    public void The_cue_matches_a_point_by_point_reference_on_square_and_non_square_grids(int height, int width)
    {
        using var scope = NewDisposeScope();
        var vce = new VisualCueEnhancement(8, 3, 1, new VceConfig(Heads: 2, Points: 2), ScalarType.Float64);
        var generator = new Generator(4);
        using (no_grad())
            foreach (var (name, parameter) in vce.named_parameters())
                if (name.StartsWith("sampling_offsets") || name.StartsWith("attention_weights"))
                    parameter.copy_(randn(parameter.shape, dtype: ScalarType.Float64, generator: generator));   // offsets reach outside the grid too
        var maps = Enumerable.Range(0, 3).Select(_ => randn(1, height * width, 8, dtype: ScalarType.Float64, generator: generator)).ToArray();
        var output = vce.Enhance(maps, height, width);
        var reference = ReferenceCue(vce, maps, height, width, output);
        Assert.True(output.Cue[0].allclose(reference, rtol: 1e-10, atol: 1e-10), $"max difference {(output.Cue[0] - reference).abs().max().item<double>()}");
        Assert.True(output.Enhanced.allclose(maps[1] + output.Cue, rtol: 1e-12, atol: 1e-12));
        Assert.True(output.AttentionWeights.sum([3, 4]).allclose(ones(1, height * width, 2, dtype: ScalarType.Float64)));
    }

    [Fact]
    public void Bad_arguments_are_clear_errors()
    {
        using var scope = NewDisposeScope();
        Assert.Contains("not divisible by 16 heads", Assert.Throws<ArgumentException>(() => new VisualCueEnhancement(40, 4, 0, new VceConfig())).Message);
        var vce = new VisualCueEnhancement(16, 2, 0, new VceConfig(Heads: 4));
        Assert.Contains("built for 2 levels", Assert.Throws<ArgumentException>(() => vce.Enhance([randn(1, 4, 16)], 2, 2)).Message);
        Assert.Contains("not 3 x 3", Assert.Throws<ArgumentException>(() => vce.Enhance([randn(1, 4, 16), randn(1, 4, 16)], 3, 3)).Message);
    }
}
