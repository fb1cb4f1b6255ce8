using System.Globalization;
using DualLora.Multimodal;

namespace DualLora.Tests.Cli;

public class TrainBenchmarkTests
{
    static readonly string[] Models = ["Dual-LoRA, plain projector", "Dual-LoRA + VCE"];

    [Fact]
    public void Bench_train_prints_both_loops_for_both_models_and_a_flat_live_tensor_count()
    {
        var (exit, output, error) = CommandLine.Run("bench", "train", "--steps", "6", "--rounds", "3", "--checkpoint-every", "2", "--batch", "2", "--text", "8");
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.TrimEntries);
        long sequence = 8 - 1 + LlavaConfig.Small().Vision.NumPatches;
        foreach (string model in Models)
        {
            // parameters, trainable, "2 x sequence", bare ms/step, trainer ms/step, overhead "%", tokens/s, checkpoint ms.
            var speed = Columns(lines, model, 0);
            Assert.Equal(11, speed.Length);
            Assert.True(Number(speed[1]) > 0 && Number(speed[1]) < Number(speed[0]), $"trainable {speed[1]} of {speed[0]}");
            Assert.Equal(["2", "x", sequence.ToString(CultureInfo.InvariantCulture)], speed[2..5]);
            double bare = Number(speed[5]), trainer = Number(speed[6]);
            Assert.True(bare > 0 && trainer > 0, $"ms/step {bare} and {trainer}");
            Assert.Equal("%", speed[8]);
            Assert.InRange(Number(speed[7]), -100, 1e6);
            // tokens/s is the batch's tokens over the trainer's ms/step (both rounded in print).
            Assert.InRange(Number(speed[9]), 0.99 * 2 * sequence * 1000 / trainer - 1, 1.01 * 2 * sequence * 1000 / trainer + 1);
            Assert.True(Number(speed[10]) > 0, $"checkpoint ms {speed[10]}");

            // Live tensors and RSS after steps 2, 4 and 6 ("a -> b -> c" each), then yes or no.
            var memory = Columns(lines, model, 1);
            Assert.Equal(11, memory.Length);
            Assert.Equal(memory[0], memory[2]);
            Assert.Equal(memory[2], memory[4]);
            Assert.True(Number(memory[0]) > 0);
            Assert.True(Number(memory[5]) > 0);
            Assert.Contains(memory[10], new[] { "yes", "no" });
        }
        Assert.Contains(lines, line => line.StartsWith("Memory over the run (both loops), after steps 2, 4 and 6 ", StringComparison.Ordinal));
        Assert.Single(lines, line => line.StartsWith("overhead of the trainer: ", StringComparison.Ordinal));
    }

    [Fact]
    public void More_rounds_than_steps_is_a_usage_error_naming_both_options()
    {
        var (exit, _, error) = CommandLine.Run("bench", "train", "--steps", "2", "--rounds", "3");
        Assert.Equal(2, exit);
        Assert.Contains("--rounds 3 is more than the 2 steps (--steps)", error);
    }

    /// <summary>The words after a model's name in its <paramref name="table"/>-th row (0: speed, 1: memory).</summary>
    static string[] Columns(string[] lines, string model, int table)
    {
        var rows = lines.Where(line => line.StartsWith(model + " ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, rows.Count);
        return rows[table][model.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    static double Number(string text) => double.Parse(text, NumberStyles.Number | NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
}
