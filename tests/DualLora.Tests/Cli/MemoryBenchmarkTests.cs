using System.Text.Json.Nodes;
using DualLora.Cli.Benchmarks;

namespace DualLora.Tests.Cli;

// The child sets the RNG seed: process-wide state.
[Collection(ProcessStateCollection.Name)]
public class MemoryBenchmarkTests
{
    [Fact]
    public void A_long_runs_child_reports_flat_live_tensors_and_adamw_state_of_two_float32_moments_per_trainable_parameter()
    {
        int dual = PyTorchBenchmark.Methods(16).ToList().FindIndex(m => m.Name == "Dual-LoRA");
        var (exit, output, error) = CommandLine.Run("bench", "memory-run", dual.ToString(), "10", "2", "5", "16");
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        var run = JsonNode.Parse(output)!.AsObject();
        long trainable = run["trainable"]!.GetValue<long>();
        Assert.True(trainable > 0);
        Assert.Equal(2 * 4 * trainable, run["optimizer_bytes"]!.GetValue<long>());
        var points = run["points"]!.AsArray();
        Assert.Equal([1, 5, 10], points.Select(p => p!["step"]!.GetValue<int>()));
        // After the first step (when AdamW's state appears) the live tensors stay where they are.
        Assert.Equal(points[1]!["live"]!.GetValue<long>(), points[2]!["live"]!.GetValue<long>());
        // The peak since the reset is at least every resident set read after it.
        Assert.True(run["peak"]!.GetValue<long>() >= points.Max(p => p!["rss"]!.GetValue<long>()));
    }
}
