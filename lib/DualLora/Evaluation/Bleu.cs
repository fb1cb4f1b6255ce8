namespace DualLora.Evaluation;

/// <summary>
/// BLEU-4 (Papineni et al., 2002) with one reference per prediction, over the whitespace tokens of
/// <see cref="AnswerText.Tokens"/>: the geometric mean of the modified (clipped) n-gram precisions for n = 1..4
/// with uniform weights, times the brevity penalty BP = exp(1 − r/c) when the candidate length c is below the
/// reference length r, else 1. Scores are in [0, 1] (papers print them × 100).
/// </summary>
public static class Bleu
{
    public const int MaxOrder = 4;

    /// <summary>
    /// Corpus BLEU-4, as the paper defines it and as a task's BLEU is reported: clipped n-gram matches and
    /// candidate n-gram counts are summed over all pairs before dividing, and c and r are the corpus's total
    /// lengths. No smoothing: a corpus without a single matching 4-gram scores 0 (as NLTK's <c>corpus_bleu</c>).
    /// </summary>
    public static double Corpus(IReadOnlyList<(string Prediction, string Reference)> pairs)
    {
        var matches = new long[MaxOrder];
        var totals = new long[MaxOrder];
        long candidateLength = 0, referenceLength = 0;
        foreach (var (prediction, reference) in pairs)
        {
            var candidate = AnswerText.Tokens(prediction);
            var expected = AnswerText.Tokens(reference);
            candidateLength += candidate.Count;
            referenceLength += expected.Count;
            for (int n = 1; n <= MaxOrder; n++)
            {
                var (matched, total) = ClippedMatches(candidate, expected, n);
                matches[n - 1] += matched;
                totals[n - 1] += total;
            }
        }
        if (candidateLength == 0) return referenceLength == 0 ? 1 : 0;
        double logPrecision = 0;
        for (int n = 0; n < MaxOrder; n++)
        {
            if (matches[n] == 0) return 0;
            logPrecision += Math.Log((double)matches[n] / totals[n]) / MaxOrder;
        }
        return BrevityPenalty(candidateLength, referenceLength) * Math.Exp(logPrecision);
    }

    /// <summary>
    /// Sentence BLEU-4 of one pair, for the per-sample values: Lin and Och's (2004) add-one smoothing ("BLEU+1"),
    /// which adds 1 to the matches and to the candidate n-gram count for n = 2..4 (unigrams are not smoothed),
    /// so one missing 4-gram does not zero the score. Empty candidate: 0 (1 if the reference is empty too).
    /// </summary>
    public static double Sentence(string prediction, string reference)
    {
        var candidate = AnswerText.Tokens(prediction);
        var expected = AnswerText.Tokens(reference);
        if (candidate.Count == 0) return expected.Count == 0 ? 1 : 0;
        double logPrecision = 0;
        for (int n = 1; n <= MaxOrder; n++)
        {
            var (matched, total) = ClippedMatches(candidate, expected, n);
            int smoothing = n == 1 ? 0 : 1;
            if (matched + smoothing == 0) return 0;
            logPrecision += Math.Log((double)(matched + smoothing) / (total + smoothing)) / MaxOrder;
        }
        return BrevityPenalty(candidate.Count, expected.Count) * Math.Exp(logPrecision);
    }

    /// <summary>exp(1 − r/c) when c &lt; r, else 1.</summary>
    public static double BrevityPenalty(long candidateLength, long referenceLength) =>
        candidateLength >= referenceLength ? 1 : Math.Exp(1 - (double)referenceLength / candidateLength);

    /// <summary>Candidate n-grams that occur in the reference, each counted at most as often as the reference has it; and the candidate's n-gram count.</summary>
    public static (long Matched, long Total) ClippedMatches(IReadOnlyList<string> candidate, IReadOnlyList<string> reference, int n)
    {
        var available = NGrams(reference, n).GroupBy(g => g).ToDictionary(g => g.Key, g => g.Count());
        long matched = 0, total = 0;
        foreach (var gram in NGrams(candidate, n))
        {
            total++;
            if (available.TryGetValue(gram, out int left) && left > 0)
            {
                available[gram] = left - 1;
                matched++;
            }
        }
        return (matched, total);
    }

    // A space joins the tokens; tokens never contain one.
    static IEnumerable<string> NGrams(IReadOnlyList<string> tokens, int n) =>
        Enumerable.Range(0, Math.Max(0, tokens.Count - n + 1)).Select(i => string.Join(' ', tokens.Skip(i).Take(n)));
}
