using System.Diagnostics;
using System.Text.Json.Nodes;
using DualLora.Pipelines;
using DualLora.Tests.Pipelines;
using Xunit.Abstractions;

namespace DualLora.Tests.Cli;

/// <summary>
/// train and eval from the command line, in this process and as a child process killed mid-run. They train tiny models
/// whose first weights come from the global random generator, so they run alone.
/// </summary>
[Collection(ProcessStateCollection.Name)]
public sealed class TrainCommandTests(ITestOutputHelper log) : IDisposable
{
    readonly TinyRun _run = new();

    public void Dispose() => _run.Dispose();

    [Fact]
    public void Help_lists_train_and_eval()
    {
        var (exit, output, _) = CommandLine.Run("train", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("train --config FILE [--resume]", output);
        Assert.Contains("eval (--run DIR | --model DIR [--tokenizer FILE]) --data FILE", CommandLine.Run("eval", "--help").Output);
    }

    [Fact]
    public void Bad_usage_and_bad_input_exit_with_2_and_say_what_is_wrong()
    {
        Assert.Contains("train needs --config FILE", CommandLine.Run("train").Error);
        Assert.Equal(2, CommandLine.Run("train").Exit);

        string config = _run.Config(c => c["adapter"]!["rank"] = 0);
        var (exit, _, error) = CommandLine.Run("train", "--config", config);
        Assert.Equal(2, exit);
        Assert.Contains($"error: {config}: field 'adapter.rank' is 0; allowed values: whole numbers from 1", error);

        config = _run.Config(c => c["data"]!["images"] = "data/none");
        (exit, _, error) = CommandLine.Run("train", "--config", config);
        Assert.Equal(2, exit);
        Assert.Contains($"error: {config}: field 'data.images': the image folder", error);

        Assert.Contains("eval needs either --run DIR (a training run) or --model DIR", CommandLine.Run("eval", "--data", "x.json", "--out", "o").Error);
        (exit, _, error) = CommandLine.Run("eval", "--run", _run.Folder.File("nothing"), "--data", Path.Combine(_run.Root, "data", "eval.json"), "--out", _run.Folder.File("e"));
        Assert.Equal(2, exit);
        Assert.Contains("no such run folder (--run)", error);
    }

    [Fact]
    public void Train_writes_plain_progress_lines_refuses_a_used_output_without_resume_and_eval_scores_the_run()
    {
        string config = _run.Config();
        var (exit, output, error) = CommandLine.Run("train", "--config", config);
        Assert.True(exit == 0, error);
        Assert.Contains("train: 8 samples from ", output);
        Assert.Contains("stage 1 3 steps, stage 2 4 steps, 2 samples a step", output);
        Assert.Matches(@"stage1 step 3/3  loss \d+\.\d{4}  lr \d\.\d\de-0\d  \d+ tokens/s  ETA 00:00", output);
        Assert.Contains("stage2 step 4/4  loss ", output);
        Assert.Contains("| overall | 4 |", output);

        (exit, _, error) = CommandLine.Run("train", "--config", config);
        Assert.Equal(2, exit);
        Assert.Contains($"field 'output': {_run.Out()} is not empty; resume that run (train --resume)", error);

        // Resuming a finished run trains nothing more and leaves the same final weights.
        var before = File.ReadAllBytes(Path.Combine(_run.Out(), "final", "connector.safetensors"));
        (exit, output, error) = CommandLine.Run("train", "--config", config, "--resume");
        Assert.True(exit == 0, error);
        Assert.Contains("stage2: done, its weights loaded from ", output);
        Assert.DoesNotContain("step 1/", output);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(_run.Out(), "final", "connector.safetensors")));

        string evalOut = _run.Folder.File("eval-cli");
        (exit, output, error) = CommandLine.Run("eval", "--run", Path.Combine(_run.Out(), "final"), "--data", Path.Combine(_run.Root, "data", "eval.json"),
            "--images", Path.Combine(_run.Root, "data", "images"), "--out", evalOut, "--batch", "4", "--max-new-tokens", "3");
        Assert.True(exit == 0, error);
        Assert.Contains("eval: 4 samples of ", output);
        Assert.Contains("adapter DUAL_LORA", output);
        Assert.Equal(File.ReadAllText(Path.Combine(_run.Out(), "eval", "predictions.jsonl")), File.ReadAllText(Path.Combine(evalOut, "predictions.jsonl")));

        // The base model as it is: no VCE, no adapter.
        (exit, _, error) = CommandLine.Run("eval", "--model", Path.Combine(_run.Root, "model"), "--data", Path.Combine(_run.Root, "data", "eval.json"),
            "--out", _run.Folder.File("eval-base"));
        Assert.Equal(2, exit);   // the images are not beside the JSON file
        Assert.Contains("field '[0].image' is \"shirt.png\", and ", error);
        (exit, output, error) = CommandLine.Run("eval", "--model", Path.Combine(_run.Root, "model"), "--data", Path.Combine(_run.Root, "data", "eval.json"),
            "--images", Path.Combine(_run.Root, "data", "images"), "--out", _run.Folder.File("eval-base"), "--max-new-tokens", "2");
        Assert.True(exit == 0, error);
        Assert.DoesNotContain("adapter", output.Split('\n')[0]);
    }

    /// <summary>The built CLI: beside this assembly when the build copied it with its runtime config, else in its own bin folder.</summary>
    static string CliDll()
    {
        string beside = Path.Combine(AppContext.BaseDirectory, "DualLora.Cli.dll");
        if (File.Exists(beside) && File.Exists(Path.ChangeExtension(beside, ".runtimeconfig.json"))) return beside;
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder != null; folder = folder.Parent)
        {
            string own = Path.Combine(folder.FullName, "lib", "DualLora.Cli", "bin", "Release", "net10.0", "DualLora.Cli.dll");
            if (File.Exists(own)) return own;
        }
        throw new FileNotFoundException("DualLora.Cli.dll is not built (dotnet build -c Release).");
    }

    static Process StartTrain(string config, bool resume)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = AppContext.BaseDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { CliDll(), "train", "--config", config }.Concat(resume ? ["--resume"] : Array.Empty<string>())) start.ArgumentList.Add(arg);
        return Process.Start(start)!;
    }

    static void Finish(Process process)
    {
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(120_000), "train did not finish within two minutes");
        Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}\n{output.Result}\n{error.Result}");
    }

    [Fact]
    public void A_training_process_killed_at_a_random_moment_resumes_to_the_same_bytes_as_an_unkilled_run()
    {
        void Longer(JsonObject c)
        {
            c["stages"]!["stage1"]!["steps"] = 4;
            c["stages"]!["stage2"]!["steps"] = 6;
        }
        string unkilledConfig = _run.Config(c => { Longer(c); c["output"] = "unkilled"; }, "unkilled.json");
        string killedConfig = _run.Config(c => { Longer(c); c["output"] = "killed"; }, "killed.json");
        using (var unkilled = StartTrain(unkilledConfig, resume: false)) Finish(unkilled);

        // Killed (SIGKILL) after a random delay from the moment its first checkpoint exists: wherever it is then.
        var delay = TimeSpan.FromMilliseconds(new Random(20261202).Next(0, 600));
        string firstCheckpoints = Path.Combine(_run.Out("killed"), FineTuning.Stage1Folder, "checkpoints");
        bool killedMidRun;
        using (var killed = StartTrain(killedConfig, resume: false))
        {
            var clock = Stopwatch.StartNew();
            while (!(Directory.Exists(firstCheckpoints) && Directory.GetDirectories(firstCheckpoints, "step-*").Length > 0) && !killed.HasExited)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), "no checkpoint within two minutes");
                Thread.Sleep(5);
            }
            Thread.Sleep(delay);
            killedMidRun = !killed.HasExited;
            if (killedMidRun) killed.Kill();
            killed.WaitForExit();
        }
        var left = Directory.GetDirectories(_run.Out("killed"), "step-*", SearchOption.AllDirectories).Select(d => $"{Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(d)))}/{Path.GetFileName(d)}");
        log.WriteLine($"killed {(killedMidRun ? "mid-run" : "after the end")}, {delay.TotalMilliseconds} ms after the first checkpoint; checkpoints left: {string.Join(", ", left)}");
        using (var resumed = StartTrain(killedConfig, resume: true)) Finish(resumed);

        foreach (var file in new[] { "final/connector.safetensors", "final/adapter/adapter_model.safetensors", "eval/predictions.jsonl", "eval/metrics.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(_run.Out("unkilled"), file)).SequenceEqual(File.ReadAllBytes(Path.Combine(_run.Out("killed"), file))),
                $"{file} differs (killed {(killedMidRun ? "mid-run" : "after the end")}, {delay.TotalMilliseconds} ms after the first checkpoint)");
    }
}
