using DualLora.Cli.Notebooks;
using DualLora.IO;
using DualLora.Runtime;

namespace DualLora.Cli;

/// <summary>The command line: one entry for every job the project does.</summary>
public static class Commands
{
    /// <summary>One command: the words that name it, its options, and what it does.</summary>
    sealed record CommandHelp(string Name, string Options, string Description)
    {
        public override string ToString() => $"  {Name}{(Options.Length > 0 ? " " + Options : "")}\n      {Description.ReplaceLineEndings("\n      ")}";
    }

    static readonly CommandHelp[] Help =
    [
        new("walkthrough", "[--profile smoke|full] [--in-place] [--out DIR] [--cell-timeout SECONDS]", """
            Execute every notebook under notebooks/ in order in the .NET Interactive C# kernel; write the executed
            notebooks to DIR/notebooks (or back into notebooks/ with --in-place) and the documentation site to
            DIR/site (DIR defaults to out/); print a summary. The profile defaults to environment.json's.
            """),
        new("notebooks run", "FILE.ipynb... [--output DIR] [--profile smoke|full] [--cell-timeout SECONDS]", """
            Execute the given notebooks in the .NET Interactive C# kernel, each in a process of its own; write each in
            place (or into --output). A cell still running after --cell-timeout seconds (default 1800) stops the run
            with the cell named; so does a cell that ends the kernel's process.
            """),
        new("env", "", "Print the runtime environment read from environment.json."),
        new("data tokenizer", "--corpus FILE.txt --out DIR [--min-count N]", "Build the small model's SentencePiece tokenizer (DIR/tokenizer.model) from a text file, one text a line:\nevery word seen at least N times (default 1) is one token, other text falls back to characters or bytes."),
        new("bench train", "[--steps N] [--batch N] [--text N] [--checkpoint-every N] [--rounds N]", """
            Train the small default model (Dual-LoRA on the decoder, connector trainable; with and without VCE) on
            random batches of --batch (default 8) x --text tokens (default 32) through the trainer, --steps steps
            (default 1000) with a checkpoint every --checkpoint-every (default 100), and a bare loop on a copy, in
            --rounds turns (default 10); print parameters, ms/step of both, the trainer's overhead (goal: at most
            5 %), tokens/s, the checkpoint write time, and the live tensors and RSS over the run, which must stay flat.
            """),
        new("bench data", "[--scenes N] [--batch N] [--steps N]", """
            Export N training scenes of the scene suite (default 300: 2,100 samples) to a temp folder, then time
            the data path over them (read the LLaVA JSON, decode the PNGs, collate batches of --batch, default 8)
            against the small model's Dual-LoRA training step through the trainer on the same batches (--steps,
            default 20); print both in samples/s, their ratio (the goal: at least 10x) and the data loop's live
            tensor count.
            """),
        new("bench adapters", "[--tokens N] [--repeats N]", """
            Time each adapter (forward, and forward + backward) and its peak memory, side by side, as ratios
            to LoRA: one layer at d = 4096, r = 32, and a q/v-adapted stack. Prints a table.
            """),
        new("bench pytorch", "[--rank N] [--steps N] [--rounds N] [--batch N] [--text N] [--prompts N] [--new-tokens N] [--threads N] [--python PATH] [--parity] [--part small|layer] [--layer-tokens N] [--layer-rank N]", """
            The small model with each adapter (LoRA, Dual-LoRA, the three 4-expert mixtures and a looped dense mixture; rank
            --rank, default 16), with and without VCE, in TorchSharp and in its PyTorch twin (bench/pytorch/twin.py, run by
            --python, default Debian's /usr/bin/python3 with python3-torch) side by side: first logits, loss and gradients
            must agree within 1e-5 relative (--parity stops there), then the two take turns in --rounds (default 5) of
            --steps training steps (default 10, batches of --batch x --text, default 8 x 32) and greedy generation (--prompts
            prompts x --new-tokens, default 8 x 16) on --threads threads each (default: the cores). Then one decoder layer of
            LLaMA-7B's shape (--layer-tokens, default 512; adapters at --layer-rank, default 32): inference and a training step.
            --part runs one of the two. Prints tables, Dual-LoRA's ratios to LoRA and the mixtures, and the goals as measured.
            """),
        new("bench profile", "[--rank N] [--steps N] [--rounds N] [--batch N] [--text N]", """
            Where the small model's training step (stage 2, Dual-LoRA at --rank, default 16; batches of --batch x --text,
            default 8 x 32) spends its time: its matrix products counted from the shapes against the matmul peak measured
            in the same run, the step's phases, the frozen tower's share, a step's fixed cost (from batches of 1 to 8), and
            the step with the tower's features cached. --rounds (default 5) of --steps steps (default 20).
            """),
        new("bench memory", "[--steps N] [--batch N] [--text N] [--rank N] [--layer-tokens N] [--layer-rank N]", """
            What training holds in memory, each measurement in a fresh process: every method (rank --rank, default 16) trains
            the small model with VCE for --steps steps (default 1000) of --batch x --text (default 8 x 32) while its live
            tensors and RSS are read at three points (they must stay flat), its peak RSS and AdamW's state against its
            trainable parameters; then the largest batch that fits in 24 GiB, computed from peaks measured at batches 4 to
            32, for the small model and for a 32-layer stack of LLaMA-7B-shaped layers (--layer-tokens, default 512;
            adapters at --layer-rank, default 32) from one layer measured at batches 1 and 2.
            """),
        new("data export", "DIR [--seed N] [--train N] [--validation N] [--evaluation N]", """
            Build the Fashion-MNIST scene suite (2x2 scenes, seven tasks; defaults: seed 0, 3000 training, 500
            validation and 500 evaluation scenes from disjoint images of the shipped test split) and write it to DIR
            as LLaVA JSON (training.json, validation.json, evaluation.json) and one PNG per scene in DIR/images.
            Prints each task's majority-answer rate per split: its chance level.
            """),
        new("train", "--config FILE [--resume]", """
            Fine-tune a llava-hf model on LLaVA-format data as the JSON config FILE describes (model, tokenizer, VCE,
            data, adapter, stages, batch, schedule, output; see the README): stage 1 trains the connector, stage 2 the
            adapter with the connector; writes OUT/stage1, OUT/stage2 (checkpoints, metrics.jsonl), OUT/final (adapter,
            connector.safetensors, finetune_config.json) and, with evaluation data, OUT/eval. Every input is checked
            before the first step. A non-empty OUT is refused unless --resume, which continues each stage from its
            newest checkpoint.
            """),
        new("compare", "[--profile smoke|full] [--data DIR] [--out DIR] [--report DIR] [--model DIR] [--seeds N]", """
            Compare LoRA, the three LoRA mixtures and Dual-LoRA, each without and with VCE, on the scene suite at matched
            trainable budgets (those of Dual-LoRA r = 4, 16, 32 in the full profile), the equal-rank runs and the LayerNorm/ReLU
            ablation, over N seeds (default 3), each method's learning rate chosen on the validation split; score by generation on
            the evaluation split. Writes DIR/plan.json, a record per run (DIR/runs/*.json), results.csv, results.md and the
            stage-2 curves to --report (default: --out, itself default runs/compare-PROFILE); started again, it continues where it
            stopped. --data: a scene-suite export (default: exported into OUT/scenes); --model: the base (data/pretrained/small-llava).
            """),
        new("eval", "(--run DIR | --model DIR [--tokenizer FILE]) --data FILE [--images DIR] --out DIR [--batch N] [--max-new-tokens N]", """
            Generate answers for a LLaVA JSON file (images under --images, default the file's folder) with a trained run
            (--run: its OUT/final folder, or OUT) or a base llava-hf model as it is (--model); write DIR/predictions.jsonl
            and DIR/metrics.json and print the per-task table. Defaults: --batch 16, --max-new-tokens 64.
            """),
        new("pretrain", "[--out DIR] [--seed N] [--steps N] [--batch N] [--lr X] [--scenes N] [--validation N] [--run DIR] [--from DIR] [--log-every N]", """
            Pretrain the small base model (every parameter) on the generic description task over the scene suite's
            training scenes (default 3000), print step, loss, lr and tokens/s every --log-every steps, then its accuracy
            on the validation scenes (default 500), and save it in the llava-hf layout with the tokenizer in DIR
            (default out/pretrained/small-llava). --run DIR keeps metrics.jsonl and checkpoints there and resumes;
            --from DIR continues from a base saved by an earlier pretrain, with a fresh schedule.
            """),
        new("site build", "[--out DIR]", """
            Build the documentation site from the executed notebooks under notebooks/ into DIR (default out/site):
            index.html, one page per notebook, figures/ and assets/ (KaTeX and plotly.js from `npm ci --prefix site`).
            """),
        new("site check", "DIR [--screenshots DIR]", """
            Open every page of the site in headless chromium; report console errors, equations KaTeX could not
            render, undrawn charts, images that did not load and broken links; save a screenshot of each page
            (default: DIR-screenshots beside the site). Exit code 1 if anything is wrong.
            """),
        new("site figures", "[--out DIR]", """
            Write each notebook's key figure (the first chart or image of the first cell tagged key-figure, else of
            the notebook) as DIR/<notebook>.png (default docs/figures), the pictures of the README's tour: images
            as stored, charts drawn by headless chromium at twice their size.
            """),
    ];

    const string Header = "usage: DualLora.Cli <command> [options]   (DualLora.Cli <command> --help for one command)";
    const string ExitCodes = "exit codes: 0 success, 1 a notebook or command failed, 2 bad usage or input.";

    static string Usage => $"{Header}\n\ncommands:\n{string.Join("\n", Help.Select(h => h.ToString()))}\n\n{ExitCodes}";

    /// <summary>
    /// The help asked for with --help or -h anywhere: of the command the words before it name, of every
    /// command under a group word ("bench --help"), or of all commands.
    /// </summary>
    static string HelpFor(string[] args)
    {
        var words = args.TakeWhile(a => a is not ("--help" or "-h" or "help")).Where(a => !a.StartsWith('-')).ToArray();
        for (int n = words.Length; n > 0; n--)
        {
            string name = string.Join(" ", words[..n]);
            var matches = Help.Where(h => h.Name == name || h.Name.StartsWith(name + " ", StringComparison.Ordinal)).ToList();
            if (matches.Count > 0) return $"usage:\n{string.Join("\n", matches)}\n\n{ExitCodes}";
        }
        return Usage;
    }

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        try
        {
            if (args is ["help"] || args.Contains("--help") || args.Contains("-h"))
            {
                output.WriteLine(HelpFor(args));
                return 0;
            }
            return args switch
            {
                ["walkthrough", .. var rest] => Walkthrough(Options.Parse(rest, ["--profile", "--out", "--cell-timeout"], ["--in-place"]), output),
                ["notebooks", "run", .. var rest] => RunNotebooks(Options.Parse(rest, ["--output", "--profile", "--cell-timeout"], []), output),
                ["notebooks", "worker", var notebook, var executed, var token] => NotebookWorker.Run(notebook, executed, token),
                ["env"] => Environment(output),
                ["data", "tokenizer", .. var rest] => TokenizerCommand.Run(Options.Parse(rest, ["--corpus", "--out", "--min-count"], []), output),
                ["bench", "adapter-peak", var setting, var method, var tokens] => PrintPeak(setting, method, tokens, output),
                ["bench", "train", .. var rest] => BenchTrain(Options.Parse(rest, ["--steps", "--batch", "--text", "--checkpoint-every", "--rounds"], []), output),
                ["bench", "data", .. var rest] => BenchData(Options.Parse(rest, ["--scenes", "--batch", "--steps"], []), output),
                ["bench", "pytorch", .. var rest] => BenchPyTorch(Options.Parse(rest, ["--rank", "--steps", "--rounds", "--batch", "--text", "--prompts", "--new-tokens", "--threads", "--python", "--part", "--layer-tokens", "--layer-rank"], ["--parity"]), output),
                ["bench", "profile", .. var rest] => BenchProfile(Options.Parse(rest, ["--rank", "--steps", "--rounds", "--batch", "--text"], []), output),
                ["bench", "memory", .. var rest] => BenchMemory(Options.Parse(rest, ["--steps", "--batch", "--text", "--rank", "--layer-tokens", "--layer-rank"], []), output),
                ["bench", "memory-run", var method, var steps, var batch, var text, var rank] =>
                    Print(Benchmarks.MemoryBenchmark.RunSmall(Number(method), Number(steps), Number(batch), Number(text), Number(rank)), output),
                ["bench", "memory-layer", var method, _, var batch, var tokens, var rank] =>
                    Print(Benchmarks.MemoryBenchmark.RunLayer(Number(method), Number(batch), Number(tokens), Number(rank)), output),
                ["bench", "adapters", .. var rest] => BenchAdapters(Options.Parse(rest, ["--tokens", "--repeats"], []), output),
                ["compare", .. var rest] => CompareCommand.Run(Options.Parse(rest, ["--profile", "--data", "--out", "--report", "--model", "--seeds"], []), output),
                ["train", .. var rest] => TrainCommand.Run(Options.Parse(rest, ["--config"], ["--resume"]), output, error),
                ["eval", .. var rest] => EvalCommand.Run(Options.Parse(rest, ["--run", "--model", "--tokenizer", "--data", "--images", "--out", "--batch", "--max-new-tokens"], []), output),
                ["data", .. var rest] => DataCommands.Run(rest, output),
                ["pretrain", .. var rest] => PretrainCommand.Run(Options.Parse(rest, ["--out", "--seed", "--steps", "--batch", "--lr", "--scenes", "--validation", "--run", "--from", "--log-every"], []), output),
                ["site", .. var rest] => SiteCommands.Run(rest, output, error),
                _ => throw new UsageException(args.Length == 0 ? "no command given." : $"unknown command '{string.Join(" ", args)}'."),
            };
        }
        catch (UsageException e)
        {
            error.WriteLine($"error: {e.Message}\n\n{Usage}");
            return 2;
        }
        catch (Exception e) when (e is InvalidDataException or InvalidFileException or FileNotFoundException)
        {
            error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (NotebookRunException e)
        {
            error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    static int Environment(TextWriter output)
    {
        var environment = RuntimeEnvironment.Find();
        var device = environment.Apply();
        foreach (var row in RuntimeReport.Describe(environment, device)) output.WriteLine($"{row.Item,-22} {row.Value}");
        return 0;
    }

    static int BenchAdapters(Options options, TextWriter output)
    {
        int tokens = options.Integer("--tokens", 512), repeats = options.Integer("--repeats", 15);
        var environment = RuntimeEnvironment.Find();
        environment.Apply();
        var rows = Benchmarks.AdapterBenchmark.Run(tokens, repeats, output);
        Benchmarks.AdapterBenchmark.Print(rows, tokens, output);
        return 0;
    }

    static int BenchTrain(Options options, TextWriter output)
    {
        RuntimeEnvironment.Find().Apply();
        Benchmarks.TrainBenchmark.Run(new Benchmarks.TrainBenchmark.Settings(options.Integer("--steps", 1000), options.Integer("--batch", 8),
            options.Integer("--text", 32), options.Integer("--checkpoint-every", 100), options.Integer("--rounds", 10)), output);
        return 0;
    }

    static int BenchPyTorch(Options options, TextWriter output)
    {
        Benchmarks.PyTorchBenchmark.Run(new Benchmarks.PyTorchBenchmark.Settings(options.Integer("--rank", 16), options.Integer("--steps", 10),
            options.Integer("--rounds", 5), options.Integer("--batch", 8), options.Integer("--text", 32), options.Integer("--prompts", 8),
            options.Integer("--new-tokens", 16), options.Integer("--threads", System.Environment.ProcessorCount), options.Value("--python") ?? "/usr/bin/python3",
            options.Flag("--parity"), options.Value("--part") switch
            {
                null => Benchmarks.PyTorchBenchmark.Part.Both,
                "small" => Benchmarks.PyTorchBenchmark.Part.Small,
                "layer" => Benchmarks.PyTorchBenchmark.Part.Layer,
                var other => throw new UsageException($"--part '{other}': use small or layer (both run without it)."),
            }, options.Integer("--layer-tokens", 512), options.Integer("--layer-rank", 32)), output);
        return 0;
    }

    static int BenchProfile(Options options, TextWriter output)
    {
        RuntimeEnvironment.Find().Apply();
        Benchmarks.ProfileBenchmark.Run(new Benchmarks.ProfileBenchmark.Settings(options.Integer("--rank", 16), options.Integer("--steps", 20),
            options.Integer("--rounds", 5), options.Integer("--batch", 8), options.Integer("--text", 32)), output);
        return 0;
    }

    static int BenchMemory(Options options, TextWriter output)
    {
        RuntimeEnvironment.Find().Apply();
        Benchmarks.MemoryBenchmark.Run(new Benchmarks.MemoryBenchmark.Settings(options.Integer("--steps", 1000), options.Integer("--batch", 8),
            options.Integer("--text", 32), options.Integer("--rank", 16), options.Integer("--layer-tokens", 512), options.Integer("--layer-rank", 32)), output);
        return 0;
    }

    // The children of bench memory: one JSON line each.
    static int Print(string line, TextWriter output)
    {
        output.WriteLine(line);
        return 0;
    }

    static int Number(string text) => int.Parse(text, System.Globalization.CultureInfo.InvariantCulture);

    static int BenchData(Options options, TextWriter output)
    {
        var environment = RuntimeEnvironment.Find();
        environment.Apply();
        Benchmarks.DataBenchmark.Run(environment, options.Integer("--scenes", 300), options.Integer("--batch", 8), options.Integer("--steps", 20), output);
        return 0;
    }

    // The child process of bench adapters' memory column.
    static int PrintPeak(string setting, string method, string tokens, TextWriter output)
    {
        output.WriteLine(Benchmarks.AdapterBenchmark.MeasurePeakOfOneStep(int.Parse(setting), int.Parse(method), int.Parse(tokens)));
        return 0;
    }

    internal static Profile? ParseProfile(Options options) => options.Value("--profile") switch
    {
        null => null,
        "smoke" => Profile.Smoke,
        "full" => Profile.Full,
        var other => throw new UsageException($"--profile is '{other}'; allowed values: smoke, full."),
    };

    static int RunNotebooks(Options options, TextWriter output)
    {
        if (options.Positional.Count == 0) throw new UsageException("notebooks run needs at least one .ipynb file.");
        var runner = Runner(options, output);
        var profile = ParseProfile(options);
        var runs = options.Positional.Select(path => runner.Run(path, options.Value("--output"), profile)).ToList();
        PrintSummary(runs, output);
        return 0;
    }

    static int Walkthrough(Options options, TextWriter output)
    {
        var environment = RuntimeEnvironment.Find();
        string root = Path.GetDirectoryName(environment.SourceFile)!;
        string notebooks = Path.Combine(root, "notebooks");
        string outFolder = Path.GetFullPath(options.Value("--out") ?? Path.Combine(root, "out"));
        var files = Directory.GetFiles(notebooks, "*.ipynb").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new FileNotFoundException($"{notebooks}: no notebooks to run.");
        var profile = ParseProfile(options) ?? environment.Profile;
        output.WriteLine($"walkthrough: {files.Count} notebooks, profile {profile.ToString().ToLowerInvariant()}");

        var runner = Runner(options, output);
        string? notebookOutput = options.Flag("--in-place") ? null : Path.Combine(outFolder, "notebooks");
        var runs = files.Select(f => runner.Run(f, notebookOutput, profile)).ToList();
        string site = Path.Combine(outFolder, "site");
        Site.SiteBuilder.Build(runs.Select(r => r.WrittenTo).ToList(), site);
        PrintSummary(runs, output);
        output.WriteLine($"executed notebooks: {notebookOutput ?? notebooks}");
        output.WriteLine($"documentation site: {Path.Combine(site, "index.html")}");
        return 0;
    }

    static NotebookRunner Runner(Options options, TextWriter output) =>
        new(output, TimeSpan.FromSeconds(options.Integer("--cell-timeout", (int)NotebookRunner.DefaultCellTimeout.TotalSeconds)));

    static void PrintSummary(IReadOnlyList<NotebookRun> runs, TextWriter output)
    {
        output.WriteLine();
        output.WriteLine($"{"notebook",-40} {"cells",6} {"outputs",8} {"seconds",8}");
        foreach (var run in runs)
            output.WriteLine($"{Path.GetFileName(run.Notebook),-40} {run.Cells.Count,6} {run.Cells.Sum(c => c.Outputs),8} {run.Elapsed.TotalSeconds,8:F1}");
        output.WriteLine($"{runs.Count} notebooks executed, {runs.Sum(r => r.Cells.Count)} cells, {runs.Sum(r => r.Elapsed.TotalSeconds):F1} s");
    }
}

sealed class UsageException(string message) : Exception(message);

/// <summary>Options of the form --name value or --flag, and positional arguments, as one command accepts them.</summary>
sealed class Options
{
    readonly Dictionary<string, string> values = [];
    readonly HashSet<string> flags = [];
    public List<string> Positional { get; } = [];

    public string? Value(string name) => values.GetValueOrDefault(name);
    public bool Flag(string name) => flags.Contains(name);

    public int Integer(string name, int fallback) => Value(name) is not { } text ? fallback
        : int.TryParse(text, out int value) && value > 0 ? value : throw new UsageException($"{name} must be a positive whole number, got '{text}'.");

    public static Options Parse(IReadOnlyList<string> args, string[] valued, string[] flagNames)
    {
        var options = new Options();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (valued.Contains(arg))
            {
                if (i + 1 >= args.Count) throw new UsageException($"{arg} needs a value.");
                options.values[arg] = args[++i];
            }
            else if (flagNames.Contains(arg)) options.flags.Add(arg);
            else if (arg.StartsWith("--", StringComparison.Ordinal)) throw new UsageException($"unknown option '{arg}'.");
            else options.Positional.Add(arg);
        }
        return options;
    }
}
