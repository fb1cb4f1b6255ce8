namespace DualLora.Data;

/// <summary>Who speaks a turn, as LLaVA's files name it in <c>from</c>.</summary>
public enum TurnRole
{
    /// <summary><c>"human"</c>: the prompt, masked out of the loss.</summary>
    Human,
    /// <summary><c>"gpt"</c>: the answer, learned.</summary>
    Gpt,
}

/// <summary>One turn of a conversation; <paramref name="Text"/> is the <c>value</c> exactly as the file has it (with any <c>&lt;image&gt;</c>).</summary>
public sealed record ConversationTurn(TurnRole Role, string Text)
{
    /// <summary>Answers are what training learns; every other token is labelled -100.</summary>
    public bool IsAnswer => Role == TurnRole.Gpt;
}

/// <summary>
/// One LLaVA instruction sample: human and gpt turns alternating from a human turn, the image (a full path,
/// resolved against the image folder; null for a text-only sample) and the fields the format does not name
/// (a "task" or "category", say), a string as written and any other value as its JSON text.
/// </summary>
public sealed record InstructionSample(string Id, string? ImagePath, IReadOnlyList<ConversationTurn> Turns, IReadOnlyDictionary<string, string> Extra)
{
    /// <summary>The placeholder marking where the image's tokens go, allowed once, in the first human turn.</summary>
    public const string ImagePlaceholder = "<image>";

    public bool HasImage => ImagePath is not null;
}
