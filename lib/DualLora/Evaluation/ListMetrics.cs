namespace DualLora.Evaluation;

/// <summary>Set precision, recall and F1 of a list answer's items.</summary>
public sealed record ListOverlap(double Precision, double Recall, double F1);

/// <summary>
/// Metrics for list answers ("shirt, bag, shoe"), over the items of <see cref="AnswerText.Items"/>.
/// <list type="bullet">
/// <item><see cref="Overlap"/>: precision, recall and F1 over the multiset of items, ignoring order. An item
/// matches as many times as it occurs in both lists (min of the two counts), so a repeated item must be
/// repeated to count twice.</item>
/// <item><see cref="Order"/>: the order-aware score, the longest common subsequence of the two item sequences
/// divided by the longer sequence's length. It is 1 only for the identical sequence, and it penalises
/// missing items, extra items and misplaced items alike: a reversed list of n distinct items scores 1/n.</item>
/// </list>
/// Two empty lists agree perfectly (every score 1); one empty list against a non-empty one scores 0.
/// </summary>
public static class ListMetrics
{
    public static ListOverlap Overlap(string prediction, string reference)
    {
        var predicted = AnswerText.Items(prediction);
        var expected = AnswerText.Items(reference);
        if (predicted.Count == 0 && expected.Count == 0) return new(1, 1, 1);
        if (predicted.Count == 0 || expected.Count == 0) return new(0, 0, 0);

        var remaining = expected.GroupBy(item => item).ToDictionary(g => g.Key, g => g.Count());
        int matched = 0;
        foreach (var item in predicted)
        {
            if (remaining.TryGetValue(item, out int left) && left > 0)
            {
                remaining[item] = left - 1;
                matched++;
            }
        }
        double precision = (double)matched / predicted.Count, recall = (double)matched / expected.Count;
        double f1 = matched == 0 ? 0 : 2 * precision * recall / (precision + recall);
        return new(precision, recall, f1);
    }

    public static double Order(string prediction, string reference)
    {
        var predicted = AnswerText.Items(prediction);
        var expected = AnswerText.Items(reference);
        int longer = Math.Max(predicted.Count, expected.Count);
        return longer == 0 ? 1 : (double)AnswerText.LongestCommonSubsequence(predicted, expected) / longer;
    }
}
