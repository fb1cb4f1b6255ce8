using DualLora.Evaluation;

namespace DualLora.Tests.Evaluation;

public class MetricsTests
{
    const int Digits = 12;

    [Theory]
    [InlineData("  A  Shirt.  ", "a shirt")]
    [InlineData("a shirt .", "a shirt")]          // the space before the period goes with it
    [InlineData("Wait..", "wait.")]               // one trailing period only
    [InlineData("U.S. Navy", "u.s. navy")]        // inner periods stay
    [InlineData("shirt,\tbag\n", "shirt, bag")]
    [InlineData("", "")]
    public void Normalisation_trims_lowers_collapses_whitespace_and_strips_one_trailing_period(string text, string expected) =>
        Assert.Equal(expected, AnswerText.Normalize(text));

    [Fact]
    public void Exact_match_compares_normalised_answers()
    {
        Assert.Equal(1, ExactMatch.Score("Yes.", "yes"));
        Assert.Equal(1, ExactMatch.Score(" Ankle  boot", "ankle boot."));
        Assert.Equal(0, ExactMatch.Score("no", "yes"));
        Assert.Equal(0, ExactMatch.Score("ankle boots", "ankle boot"));
    }

    [Fact]
    public void List_items_split_on_commas_and_drop_empty_items()
    {
        Assert.Equal(["shirt", "ankle boot", "bag"], AnswerText.Items("Shirt, Ankle  boot,,bag,"));
        Assert.Empty(AnswerText.Items(" . "));
    }

    [Fact]
    public void Set_precision_recall_and_F1_count_duplicates_as_a_multiset()
    {
        // Predicted {shirt ×2, bag, shoe}, reference {shirt ×3, bag}: shirt matches min(2, 3) = 2 times, bag once,
        // shoe never: 3 matches; P = 3/4, R = 3/4, F1 = 3/4.
        Assert.Equal(new ListOverlap(0.75, 0.75, 0.75), ListMetrics.Overlap("shirt, bag, shirt, shoe", "shirt, shirt, shirt, bag"));
        // A repeated item counts once against a single reference item: P = 1/2, R = 1, F1 = 2·(1/2)·1/(3/2) = 2/3.
        var repeated = ListMetrics.Overlap("shirt, shirt", "Shirt.");
        Assert.Equal(0.5, repeated.Precision, Digits);
        Assert.Equal(1, repeated.Recall, Digits);
        Assert.Equal(2.0 / 3, repeated.F1, Digits);
        // Order does not matter here; nothing in common scores 0; two empty lists agree.
        Assert.Equal(new ListOverlap(1, 1, 1), ListMetrics.Overlap("bag, shirt", "shirt, bag"));
        Assert.Equal(new ListOverlap(0, 0, 0), ListMetrics.Overlap("coat", "shirt, bag"));
        Assert.Equal(new ListOverlap(0, 0, 0), ListMetrics.Overlap("", "shirt"));
        Assert.Equal(new ListOverlap(1, 1, 1), ListMetrics.Overlap("", ""));
    }

    [Fact]
    public void The_order_score_is_the_longest_common_subsequence_over_the_longer_list()
    {
        Assert.Equal(1, ListMetrics.Order("a, b, c, d", "a, b, c, d"));
        // Reversed: any two items are in the wrong order, so the LCS is one item: 1/4.
        Assert.Equal(0.25, ListMetrics.Order("d, c, b, a", "a, b, c, d"), Digits);
        // A missing item: LCS (a, c) = 2 of 3. An extra item: LCS 3 of 4.
        Assert.Equal(2.0 / 3, ListMetrics.Order("a, c", "a, b, c"), Digits);
        Assert.Equal(0.75, ListMetrics.Order("a, x, b, c", "a, b, c"), Digits);
        // One swap of neighbours: LCS (a, c, d) or (a, b, d) = 3 of 4.
        Assert.Equal(0.75, ListMetrics.Order("a, c, b, d", "a, b, c, d"), Digits);
        Assert.Equal(1, ListMetrics.Order("", ""));
        Assert.Equal(0, ListMetrics.Order("", "a"));
    }

    [Fact]
    public void Clipped_ngram_matches_follow_Papinenis_example()
    {
        // Papineni et al.'s example: "the" seven times against a reference with two "the": modified unigram precision 2/7.
        Assert.Equal((2L, 7L), Bleu.ClippedMatches(AnswerText.Tokens("the the the the the the the"), AnswerText.Tokens("the cat is on the mat"), 1));
    }

    // Candidate "the cat sat on the mat" against "the cat is on the mat" (6 tokens each), by hand:
    //   unigrams  the×2 cat sat on mat         vs the×2 cat is on mat          matches 5 of 6
    //   bigrams   the-cat cat-sat sat-on on-the the-mat                         matches 3 (the-cat, on-the, the-mat) of 5
    //   trigrams  the-cat-sat cat-sat-on sat-on-the on-the-mat                 matches 1 (on-the-mat) of 4
    //   4-grams   the-cat-sat-on cat-sat-on-the sat-on-the-mat                 matches 0 of 3
    const string Cat = "The cat sat on the mat.", CatReference = "the cat is on the mat";

    [Fact]
    public void Sentence_BLEU_adds_one_to_the_higher_order_precisions()
    {
        // BLEU+1: p1 = 5/6 unsmoothed, p2 = (3+1)/(5+1), p3 = (1+1)/(4+1), p4 = (0+1)/(3+1); equal lengths, BP = 1.
        double expected = Math.Pow(5.0 / 6 * 4.0 / 6 * 2.0 / 5 * 1.0 / 4, 0.25);   // (1/18)^(1/4) ≈ 0.4855
        Assert.Equal(expected, Bleu.Sentence(Cat, CatReference), Digits);
        Assert.Equal(1, Bleu.Sentence("A dog runs.", "a dog runs"), Digits);
        Assert.Equal(0, Bleu.Sentence("", "a dog"));
        Assert.Equal(0, Bleu.Sentence("x y z", "a b c"));   // no unigram in common
    }

    [Fact]
    public void Corpus_BLEU_sums_the_counts_over_pairs_and_applies_the_brevity_penalty()
    {
        // Alone, the cat pair has no matching 4-gram: corpus BLEU 0 (no smoothing).
        Assert.Equal(0, Bleu.Corpus([(Cat, CatReference)]));
        // With "a dog runs in the park" against "a dog runs in the park today" (6 of 7 tokens; every n-gram matches:
        // 6/6, 5/5, 4/4, 3/3): p1 = (5+6)/(6+6), p2 = (3+5)/(5+5), p3 = (1+4)/(4+4), p4 = (0+3)/(3+3);
        // c = 12 < r = 13, so BP = exp(1 − 13/12).
        double expected = Math.Exp(1 - 13.0 / 12) * Math.Pow(11.0 / 12 * 8.0 / 10 * 5.0 / 8 * 3.0 / 6, 0.25);
        Assert.Equal(expected, Bleu.Corpus([(Cat, CatReference), ("a dog runs in the park", "a dog runs in the park today")]), Digits);
        Assert.Equal(1, Bleu.Corpus([("a b c d", "a b c d"), ("e f g h i", "e f g h i")]), Digits);
    }

    [Fact]
    public void The_brevity_penalty_applies_only_to_short_candidates() =>
        Assert.Equal((1.0, 1.0, Math.Exp(1 - 4.0 / 3)), (Bleu.BrevityPenalty(5, 4), Bleu.BrevityPenalty(4, 4), Bleu.BrevityPenalty(3, 4)));

    [Fact]
    public void ROUGE_L_is_the_F_measure_of_the_longest_common_subsequence()
    {
        // Lin (2004): "police killed the gunman" vs "police kill the gunman": LCS "police the gunman" = 3 of 4 each way.
        Assert.Equal(0.75, RougeL.Score("police killed the gunman", "police kill the gunman"), Digits);
        // "the gunman kill police": LCS "the gunman" (or "kill") = 2 of 4: 1/2.
        Assert.Equal(0.5, RougeL.Score("the gunman kill police", "police kill the gunman"), Digits);
        // "a b c" vs "a b c d e": LCS 3, P = 1, R = 3/5. β = 1: 2·1·0.6/1.6 = 0.75; β = 2: 5·0.6/(0.6 + 4) = 3/4.6.
        Assert.Equal(0.75, RougeL.Score("a b c", "a b c d e"), Digits);
        Assert.Equal(3 / 4.6, RougeL.Score("a b c", "a b c d e", beta: 2), Digits);
        Assert.Equal(0, RougeL.Score("x", "a b"));
        Assert.Equal(1, RougeL.Score("", ""));
    }

    [Fact]
    public void Answer_kinds_are_inferred_from_the_references()
    {
        Assert.Equal(AnswerKind.List, AnswerKinds.Infer(["shirt, bag", "ankle boot, coat, bag", "shirt"]));
        Assert.Equal(AnswerKind.FreeText, AnswerKinds.Infer(["The shirt is on the left.", "A bag lies next to the coat."]));
        // Commas between clauses do not make a list: the parts are longer than a list item.
        Assert.Equal(AnswerKind.FreeText, AnswerKinds.Infer(["Mix the flour and the sugar, then bake it for twenty minutes."]));
        Assert.Equal(AnswerKind.Short, AnswerKinds.Infer(["shirt", "3", "yes", "ankle boot"]));
        Assert.Equal(AnswerKind.Short, AnswerKinds.Infer(["shirt", "bag", "shirt, bag"]));   // a minority of lists
    }
}
