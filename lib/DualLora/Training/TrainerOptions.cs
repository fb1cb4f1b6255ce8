namespace DualLora.Training;

/// <summary>How a stage trains.</summary>
/// <param name="Steps">Optimizer steps of the stage.</param>
public sealed record TrainerOptions(int Steps)
{
    /// <summary>Micro-batches whose gradients add up to one optimizer step (the batch seen by a step is this many batches).</summary>
    public int GradientAccumulation { get; init; } = 1;
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Cosine;
    /// <summary>The share of the steps spent warming up (METHOD.md §4: 0.03).</summary>
    public double WarmupRatio { get; init; } = 0.03;
    /// <summary>Clip the gradients to this global L2 norm (Hugging Face's default: 1); 0 leaves them as they are.</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Seeds the random generator (dropout) when the stage starts from scratch; null leaves the generator as it is.</summary>
    public long? Seed { get; init; }
    /// <summary>
    /// What the batches are (the data file, its size, the batch size...), in words: a checkpoint keeps it and
    /// a resumed run must say the same, or it would read other batches than the run it continues.
    /// </summary>
    public string Data { get; init; } = "";
    /// <summary>Where metrics.jsonl and checkpoints/ go; null keeps nothing on disk.</summary>
    public string? OutputFolder { get; init; }
    /// <summary>Write a checkpoint every this many steps (0: only at the end); one is always written at the end.</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>How many checkpoints to keep (the newest).</summary>
    public int KeepCheckpoints { get; init; } = 2;

    public void Validate()
    {
        static void Require(bool condition, string field, string fault)
        {
            if (!condition) throw new ArgumentException($"{field}: {fault}");
        }
        Require(Steps >= 1, "steps", $"must be at least 1, got {Steps}.");
        Require(GradientAccumulation >= 1, "gradient_accumulation", $"must be at least 1, got {GradientAccumulation}.");
        Require(WarmupRatio is >= 0 and <= 1, "warmup_ratio", $"must be in [0, 1], got {WarmupRatio}.");
        Require(MaxGradNorm >= 0 && double.IsFinite(MaxGradNorm), "max_grad_norm", $"must be 0 (off) or positive, got {MaxGradNorm}.");
        Require(CheckpointEvery >= 0, "checkpoint_every", $"must be 0 (only at the end) or positive, got {CheckpointEvery}.");
        Require(KeepCheckpoints >= 1, "keep_checkpoints", $"must be at least 1, got {KeepCheckpoints}.");
    }
}

/// <summary>One optimizer step as it happened: what a progress bar shows and metrics.jsonl records.</summary>
/// <param name="Stage">The stage's name.</param>
/// <param name="Step">The optimizer step just done, counted from 1.</param>
/// <param name="TotalSteps">The stage's steps.</param>
/// <param name="Loss">The mean loss of the step's micro-batches (auxiliary losses included).</param>
/// <param name="LearningRate">The first group's learning rate at this step.</param>
/// <param name="GradNorm">The global L2 norm of the gradients before clipping.</param>
/// <param name="Tokens">Tokens the step processed.</param>
/// <param name="TokensPerSecond">Tokens of this step over its wall time.</param>
/// <param name="Elapsed">Training time of the stage so far, resumed runs included.</param>
/// <param name="Remaining">The estimated time to the stage's end at the recent pace.</param>
public sealed record TrainingProgress(string Stage, int Step, int TotalSteps, double Loss, double LearningRate, double GradNorm,
    long Tokens, double TokensPerSecond, TimeSpan Elapsed, TimeSpan Remaining);

/// <summary>Training stopped because the loss or the gradients stopped being finite; the last good checkpoint is kept.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);
