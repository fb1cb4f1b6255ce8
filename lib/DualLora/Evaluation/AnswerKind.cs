namespace DualLora.Evaluation;

/// <summary>What a task's answers look like, which decides the metrics it gets beyond exact match (which every kind gets).</summary>
public enum AnswerKind
{
    /// <summary>A word or a few ("shirt", "3", "yes"): exact match only.</summary>
    Short,
    /// <summary>Comma-separated items ("shirt, bag, shoe"): set precision / recall / F1 and the order-aware score.</summary>
    List,
    /// <summary>Sentences: BLEU-4 and ROUGE-L.</summary>
    FreeText,
}

/// <summary>Guesses a task's <see cref="AnswerKind"/> from its references; callers override it where they know better.</summary>
public static class AnswerKinds
{
    /// <summary>A list item has at most this many words; longer comma-separated parts are clauses of a sentence.</summary>
    public const int MaxListItemWords = 4;
    /// <summary>A reference of at least this many words (and not a list) is free text.</summary>
    public const int MinFreeTextWords = 5;

    /// <summary>
    /// List when most references (more than half) split on commas into at least two items of at most
    /// <see cref="MaxListItemWords"/> words each; else free text when most references have at least
    /// <see cref="MinFreeTextWords"/> words; else short.
    /// </summary>
    public static AnswerKind Infer(IReadOnlyCollection<string> references)
    {
        if (references.Count == 0) return AnswerKind.Short;
        if (Most(references, LooksLikeList)) return AnswerKind.List;
        if (Most(references, reference => AnswerText.Tokens(reference).Count >= MinFreeTextWords)) return AnswerKind.FreeText;
        return AnswerKind.Short;
    }

    static bool LooksLikeList(string reference)
    {
        var items = AnswerText.Items(reference);
        return items.Count >= 2 && items.All(item => item.Split(' ').Length <= MaxListItemWords);
    }

    static bool Most(IReadOnlyCollection<string> references, Func<string, bool> test) => 2 * references.Count(test) > references.Count;
}
