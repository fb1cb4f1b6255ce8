using System.Globalization;

namespace DualLora.Tests.Cli;

public class DataBenchmarkTests
{
    [Fact]
    public void Bench_data_prints_both_paths_in_positive_samples_per_second_and_their_ratio()
    {
        var (exit, output, error) = CommandLine.Run("bench", "data", "--scenes", "2", "--batch", "2", "--steps", "1");
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.TrimEntries);
        // Two scenes are 14 samples: seven batches of two through the data path, one step of two through training.
        var data = Columns(lines, "data: read + decode + collate");
        Assert.Equal(["14", "7"], data[..2]);
        var training = Columns(lines, "training step (Dual-LoRA + VCE)");
        Assert.Equal(["2", "1"], training[..2]);
        foreach (var row in new[] { data, training })
        {
            Assert.True(Positive(row[2]), $"seconds '{row[2]}'");
            Assert.True(Positive(row[3]), $"samples/s '{row[3]}'");
            // Live tensors "before -> after": each batch is disposed before the next.
            Assert.Equal(row[4], row[6]);
        }
        string ratio = Assert.Single(lines, line => line.StartsWith("ratio data / training: ", StringComparison.Ordinal));
        Assert.True(Positive(ratio["ratio data / training: ".Length..ratio.IndexOf('x')]), ratio);
        Assert.Matches(@"\(goal: at least 10x on 2 cores; (met|not met) here\)$", ratio);
    }

    /// <summary>The numbers after a row's name: samples, batches, seconds, samples/s and the live tensors' "before -> after".</summary>
    static string[] Columns(string[] lines, string path)
    {
        string row = Assert.Single(lines, line => line.StartsWith(path + " ", StringComparison.Ordinal));
        return row[path.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    static bool Positive(string number) =>
        double.TryParse(number, NumberStyles.Number, CultureInfo.InvariantCulture, out double value) && value > 0;
}
