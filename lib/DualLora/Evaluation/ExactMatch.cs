namespace DualLora.Evaluation;

/// <summary>Exact match: 1 when the prediction and the reference are equal after <see cref="AnswerText.Normalize"/>, else 0.</summary>
public static class ExactMatch
{
    public static double Score(string prediction, string reference) =>
        AnswerText.Normalize(prediction) == AnswerText.Normalize(reference) ? 1 : 0;
}
