using DualLora.Display;
using DualLora.IO;
using DualLora.Training;
using Microsoft.DotNet.Interactive.Formatting;

namespace DualLora.Tests.Display;

public class TrainingDisplayTests
{
    static TrainingProgress Step(int step, int total = 100, double elapsedSeconds = 0, double loss = 1.5) =>
        new("stage2", step, total, loss, 2e-4, 0.7, 512, 1234.5, TimeSpan.FromSeconds(elapsedSeconds), TimeSpan.FromSeconds(3725));

    [Fact]
    public void The_block_shows_stage_step_bar_loss_rate_throughput_and_times()
    {
        string html = TrainingDisplay.Html(new TrainingProgress("stage2", 25, 100, 1.23456, 2e-4, 0.7, 512, 1234.4,
            TimeSpan.FromSeconds(65), TimeSpan.FromSeconds(3725)));
        Assert.Contains("<b>stage2</b> · step 25 / 100 (25%)", html);
        Assert.Contains("width:60px", html);   // a quarter of the 240 px bar
        Assert.Contains("<b>1.2346</b>", html);
        Assert.Contains("<b>2e-4</b>", html);
        Assert.Contains("<b>1,234</b>", html);
        Assert.Contains("<b>1:05</b>", html);   // elapsed
        Assert.Contains("<b>1:02:05</b>", html);   // left
        Assert.Equal("stage2 step 25/100: loss 1.2346, lr 2e-4, tokens/s 1,234, elapsed 1:05, left 1:02:05",
            TrainingDisplay.Text(new TrainingProgress("stage2", 25, 100, 1.23456, 2e-4, 0.7, 512, 1234.4, TimeSpan.FromSeconds(65), TimeSpan.FromSeconds(3725))));
    }

    [Fact]
    public void Before_the_first_step_nothing_measured_is_shown()
    {
        var waiting = TrainingDisplay.Waiting("stage1", 40);
        Assert.Equal("stage1 step 0/40: loss –, lr –, tokens/s –, elapsed 0:00, left –", TrainingDisplay.Text(waiting));
        Assert.Contains("width:0px", TrainingDisplay.Html(waiting));
        Assert.DoesNotContain("NaN", TrainingDisplay.Html(waiting));
    }

    [Fact]
    public void The_stage_name_is_escaped()
    {
        string html = TrainingDisplay.Html(new TrainingProgress("<b>&", 1, 2, 1, 1e-3, 0, 0, 0, TimeSpan.Zero, TimeSpan.Zero));
        Assert.Contains("&lt;b&gt;&amp;", html);
        Assert.DoesNotContain("<b><b>", html);
    }

    [Fact]
    public void The_formatters_show_training_progress_as_the_block()
    {
        Formatters.Register();
        var progress = Step(25);
        Assert.Equal(TrainingDisplay.Html(progress), progress.ToDisplayString("text/html"));
        Assert.Equal(TrainingDisplay.Text(progress), progress.ToDisplayString("text/plain"));
    }

    [Fact]
    public void The_throttle_passes_the_first_step_then_one_per_interval_and_always_the_last()
    {
        var passed = new List<int>();
        var throttled = TrainingDisplay.Throttled(p => passed.Add(p.Step), TimeSpan.FromSeconds(0.5));
        // A step every 0.1 s: steps 1 (t = 0.1), 6 (0.6), 11 (1.1), ... pass, and step 23 as the last.
        for (int step = 1; step <= 23; step++) throttled(Step(step, total: 23, elapsedSeconds: step * 0.1));
        Assert.Equal([1, 6, 11, 16, 21, 23], passed);
    }

    [Fact]
    public void Slow_steps_all_pass_the_throttle()
    {
        var passed = new List<int>();
        var throttled = TrainingDisplay.Throttled(p => passed.Add(p.Step));
        for (int step = 1; step <= 5; step++) throttled(Step(step, total: 5, elapsedSeconds: step * 2.0));
        Assert.Equal([1, 2, 3, 4, 5], passed);
    }

    [Theory]
    [InlineData(0, "0:00")]
    [InlineData(59.6, "1:00")]
    [InlineData(3599, "59:59")]
    [InlineData(3600, "1:00:00")]
    [InlineData(90061, "25:01:01")]
    public void Durations_read_as_minutes_and_seconds_or_hours(double seconds, string expected) =>
        Assert.Equal(expected, TrainingDisplay.Duration(TimeSpan.FromSeconds(seconds)));

    [Fact]
    public void Training_curves_draw_one_series_per_run_with_its_steps_and_losses()
    {
        var first = TrainingRun.From([Step(1, loss: 4), Step(2, loss: 3), Step(3, loss: 2)], "rank 8");
        var second = new TrainingRun("rank 16", [(1, 5.0), (2, 1.0)]);
        var chart = Charts.TrainingCurves([first, second]);
        Assert.Equal(["rank 8", "rank 16"], chart.Series.Select(s => s.Name));
        Assert.Equal([1.0, 2, 3], chart.Series[0].X);
        Assert.Equal([4.0, 3, 2], chart.Series[0].Y);
        Assert.Equal([1.0, 2], chart.Series[1].X);
        Assert.Equal([5.0, 1], chart.Series[1].Y);
        Assert.Equal(("optimizer step", "loss"), (chart.XTitle, chart.YTitle));
    }

    [Fact]
    public void Smoothed_curves_are_the_mean_of_the_last_steps()
    {
        var chart = Charts.TrainingCurves([Step(1, loss: 4), Step(2, loss: 2), Step(3, loss: 6), Step(4, loss: 0)], smoothing: 2);
        Assert.Equal("stage2", chart.Series.Single().Name);
        Assert.Equal([4.0, 3, 4, 3], chart.Series[0].Y);
        Assert.Equal("loss (mean of the last 2 steps)", chart.YTitle);
        Assert.Throws<ArgumentOutOfRangeException>(() => Charts.TrainingCurves([Step(1)], smoothing: 0));
    }

    [Fact]
    public void A_run_reads_from_the_trainers_metrics_file_or_its_folder()
    {
        using var temp = new TempFolder();
        string folder = Path.Combine(temp.Path, "dual-lora-r8");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "metrics.jsonl"),
            "{\"stage\":\"stage2\",\"step\":1,\"loss\":2.5,\"lr\":0.0002}\n{\"stage\":\"stage2\",\"step\":2,\"loss\":1.25,\"lr\":0.0002}\n");
        var run = TrainingRun.FromMetrics(folder);
        Assert.Equal("dual-lora-r8", run.Name);
        Assert.Equal([(1, 2.5), (2, 1.25)], run.Losses);
        Assert.Equal("mine", TrainingRun.FromMetrics(Path.Combine(folder, "metrics.jsonl"), "mine").Name);
    }

    [Theory]
    [InlineData("{\"step\":1,\"loss\":2}\n{\"step\":2}\n", "line 2: field 'loss'")]
    [InlineData("{\"step\":1,\"loss\":2}\nnot json\n", "line 2: not valid JSON")]
    [InlineData("{\"step\":1.5,\"loss\":2}\n", "line 1: field 'step' is missing or not a whole number")]
    [InlineData("{\"step\":1,\"loss\":\"low\"}\n", "line 1: field 'loss' is missing or not a number")]
    [InlineData("", "no steps recorded")]
    public void A_broken_metrics_file_is_refused_naming_the_file_line_and_field(string content, string expected)
    {
        using var temp = new TempFolder();
        string file = temp.File("metrics.jsonl");
        File.WriteAllText(file, content);
        var error = Assert.Throws<InvalidFileException>(() => TrainingRun.FromMetrics(file));
        Assert.Contains(file, error.Message);
        Assert.Contains(expected, error.Message);
    }
}

/// <summary>Subscribes to the formatting API's displayed values, which the notebook runner's kernels publish to as well.</summary>
[Collection(ProcessStateCollection.Name)]
public class LiveDisplayTests
{
    [Fact]
    public void The_live_display_updates_the_value_it_published()
    {
        // What a kernel sees through the formatting API: the first value published, then updates with its id.
        var seen = new List<(string Id, bool Updated, object Value)>();
        LiveDisplay live;
        using (Formatter.SubscribeToDisplayedValues(d => seen.Add((d.DisplayId, d.IsUpdated, d.Value))))
        {
            live = LiveDisplay.Show("first");
            live.Update("second");
        }
        Assert.Equal([(live.DisplayId, false, (object)"first"), (live.DisplayId, true, "second")], seen);
    }
}
