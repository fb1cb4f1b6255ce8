using System.Text.RegularExpressions;

namespace DualLora.Evaluation;

/// <summary>
/// How every metric reads an answer before comparing it. Normalisation: trim, lower case (invariant culture),
/// collapse every run of whitespace to one space, then strip one trailing period (and the whitespace before
/// it), so "A shirt. " and "a  shirt" are the same answer. Nothing else changes: inner punctuation,
/// articles and digits stay, because the scene suite's answers are exact words.
/// </summary>
public static partial class AnswerText
{
    /// <summary>The normalised text (see the class comment).</summary>
    public static string Normalize(string text)
    {
        var collapsed = Whitespace().Replace(text.Trim().ToLowerInvariant(), " ");
        return collapsed.EndsWith('.') ? collapsed[..^1].TrimEnd() : collapsed;
    }

    /// <summary>The normalised text's whitespace-separated tokens (BLEU's and ROUGE-L's units); none for an empty text.</summary>
    public static IReadOnlyList<string> Tokens(string text)
    {
        var normalized = Normalize(text);
        return normalized.Length == 0 ? [] : normalized.Split(' ');
    }

    /// <summary>
    /// A list answer's items: the normalised text split on commas, each item trimmed; empty items (from a
    /// trailing or doubled comma) are dropped. "Shirt, bag, shirt." is [shirt, bag, shirt].
    /// </summary>
    public static IReadOnlyList<string> Items(string text) =>
        Normalize(text).Split(',').Select(item => item.Trim()).Where(item => item.Length > 0).ToList();

    /// <summary>The length of a longest common subsequence of two sequences (dynamic programming, O(|a|·|b|)).</summary>
    public static int LongestCommonSubsequence(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        var previous = new int[b.Count + 1];
        var current = new int[b.Count + 1];
        for (int i = 1; i <= a.Count; i++)
        {
            for (int j = 1; j <= b.Count; j++)
                current[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1 : Math.Max(previous[j], current[j - 1]);
            (previous, current) = (current, previous);
        }
        return previous[b.Count];
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
