namespace DualLora.Training;

/// <summary>How the learning rate moves over a stage's optimizer steps.</summary>
public enum ScheduleKind
{
    /// <summary>Linear warm-up, then half a cosine down towards 0 (METHOD.md §4).</summary>
    Cosine,
    /// <summary>Linear warm-up, then the peak learning rate throughout.</summary>
    Constant,
}

/// <summary>
/// The factor that scales every group's peak learning rate at each optimizer step. Warm-up takes
/// W = ⌈ratio · T⌉ of the T steps. Step t (counted from 0) gets (t + 1) / W during warm-up, so the first
/// step already moves the weights (Hugging Face's schedule gives it 0), then, for the cosine,
/// ½(1 + cos(π (t − W) / (T − W))): 1 right after warm-up, approaching 0 at the last step.
/// </summary>
public sealed record LearningRateSchedule(ScheduleKind Kind, int TotalSteps, double WarmupRatio)
{
    public int WarmupSteps { get; } = WarmupRatio is >= 0 and <= 1 && TotalSteps >= 1
        ? (int)Math.Ceiling(WarmupRatio * TotalSteps)
        : throw new ArgumentException($"schedule: the warm-up ratio must be in [0, 1] (got {WarmupRatio}) and the steps at least 1 (got {TotalSteps}).");

    public double Factor(long step)
    {
        if (step < WarmupSteps) return (step + 1) / (double)WarmupSteps;
        if (Kind == ScheduleKind.Constant) return 1;
        double progress = (step - WarmupSteps) / (double)Math.Max(1, TotalSteps - WarmupSteps);
        return 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
