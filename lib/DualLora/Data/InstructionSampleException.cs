namespace DualLora.Data;

/// <summary>Why a sample of an instruction-data file is refused; skip mode counts samples by it.</summary>
public enum SampleFault
{
    /// <summary>A field missing or of the wrong JSON type, or a <c>from</c> other than human or gpt.</summary>
    MalformedField,
    MissingImageFile,
    /// <summary>An image file that does not decode; found when the image is read, not at load.</summary>
    UndecodableImage,
    /// <summary>The sample names an image but its first human turn has no <c>&lt;image&gt;</c>.</summary>
    MissingPlaceholder,
    /// <summary>An <c>&lt;image&gt;</c> in a text-only sample.</summary>
    PlaceholderWithoutImage,
    /// <summary>An <c>&lt;image&gt;</c> outside the first human turn, or more than one.</summary>
    MisplacedPlaceholder,
    /// <summary>Turns that do not alternate human, gpt from a human turn to a gpt turn.</summary>
    WrongRoleOrder,
    EmptyAnswer,
    DuplicateId,
    /// <summary>Truncation to the collator's maximum length cuts away every answer token; found when collating.</summary>
    NoAnswerWithinMaxLength,
}

/// <summary>
/// A refused sample: the message names the sample id, and the file and field when the fault is in the file. An <see cref="IOException"/>
/// (the nearest base: <see cref="InvalidDataException"/>, used for whole-file faults, is sealed).
/// </summary>
public sealed class InstructionSampleException(SampleFault fault, string sampleId, string message, Exception? inner = null)
    : IOException(message, inner)
{
    public SampleFault Fault { get; } = fault;
    public string SampleId { get; } = sampleId;
}
