using System.Globalization;
using System.Text.RegularExpressions;
using DualLora.Adapters;
using DualLora.Multimodal;

namespace DualLora.Tests.Cli;

// bench profile applies environment.json (the thread count, the RNG seed): process-wide state.
[Collection(ProcessStateCollection.Name)]
public class ProfileBenchmarkTests
{
    [Fact]
    public void Bench_profile_counts_the_steps_products_and_a_step_makes_as_many_operations_at_any_batch_size()
    {
        var (exit, output, error) = CommandLine.Run("bench", "profile", "--steps", "1", "--rounds", "1", "--batch", "3", "--text", "5");
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        double peak = Number(Regex.Match(output, @"the peak is the best, ([\d.]+) GFLOP/s").Groups[1].Value);
        Assert.True(peak > 0);
        double dispatch = Number(Regex.Match(output, @"One operation's own cost \(.*\): ([\d.]+) us\.").Groups[1].Value);
        Assert.True(dispatch > 0);

        foreach (bool vce in new[] { false, true })
        {
            string name = vce ? "Dual-LoRA + VCE" : "Dual-LoRA, plain projector";
            string section = output[output.IndexOf(name + " (r = 16)", StringComparison.Ordinal)..];
            var flops = LlavaFlops.Stage2Step(LlavaConfig.Small(vce), new DualLoraConfig(Rank: 16), 3, 5);
            Assert.Equal((flops.Total / 1e9).ToString("F2", CultureInfo.InvariantCulture),
                Regex.Match(section, @"Counted matrix products per step: ([\d.]+) GFLOP").Groups[1].Value);

            // ms, GFLOP/s and the share of the peak agree with each other (all rounded in print).
            var row = Regex.Match(section, @"as it is\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) %");
            double ms = Number(row.Groups[1].Value), gigaFlops = Number(row.Groups[2].Value), share = Number(row.Groups[3].Value);
            Assert.InRange(gigaFlops, 0.98 * flops.Total / ms / 1e6 - 0.1, 1.02 * flops.Total / ms / 1e6 + 0.1);
            Assert.InRange(share, 0.98 * 100 * gigaFlops / peak - 0.1, 1.02 * 100 * gigaFlops / peak + 0.1);

            // The image tokens are spliced in one gather: batch 3 and batch 1 run the same operations, and the cache removes the tower's.
            var created = Regex.Match(section, @"Tensors a step creates \(each operation makes at least one\): ([\d,]+) at batch 3, ([\d,]+) at batch 1, ([\d,]+) with the tower cached");
            Assert.True(created.Success, section);
            Assert.Equal(created.Groups[1].Value, created.Groups[2].Value);
            Assert.True(Number(created.Groups[3].Value) < Number(created.Groups[1].Value));
            // Their dispatch is the count times one operation's cost (both rounded in print).
            double dispatchMs = Number(Regex.Match(section, @"their dispatch is ([\d.]+) ms").Groups[1].Value);
            Assert.InRange(dispatchMs, Number(created.Groups[1].Value) * dispatch / 1000 - 0.1, Number(created.Groups[1].Value) * dispatch / 1000 + 0.1);
        }
    }

    static double Number(string text) => double.Parse(text, NumberStyles.Number, CultureInfo.InvariantCulture);
}
