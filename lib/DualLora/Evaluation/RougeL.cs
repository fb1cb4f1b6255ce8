namespace DualLora.Evaluation;

/// <summary>
/// ROUGE-L (Lin, 2004) of one pair over the whitespace tokens of <see cref="AnswerText.Tokens"/>: with L the
/// longest common subsequence, recall R = L/|reference|, precision P = L/|prediction| and the F-measure
/// F = (1 + β²)·P·R / (R + β²·P). β = 1 by default (the balanced F1, as Google's <c>rouge-score</c> package
/// reports; the COCO caption toolkit uses 1.2). A task's ROUGE-L is the mean over its samples.
/// Two empty texts score 1; one empty text against a non-empty one scores 0.
/// </summary>
public static class RougeL
{
    public const double DefaultBeta = 1;

    public static double Score(string prediction, string reference, double beta = DefaultBeta)
    {
        var candidate = AnswerText.Tokens(prediction);
        var expected = AnswerText.Tokens(reference);
        if (candidate.Count == 0 && expected.Count == 0) return 1;
        int common = AnswerText.LongestCommonSubsequence(candidate, expected);
        if (common == 0) return 0;
        double precision = (double)common / candidate.Count, recall = (double)common / expected.Count;
        return (1 + beta * beta) * precision * recall / (recall + beta * beta * precision);
    }
}
