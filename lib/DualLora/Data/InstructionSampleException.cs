using DualLora.IO;

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
/// A refused sample of an instruction-data file: the message is <c>{file}: sample "{id}": {fault}</c>, the fault
/// naming the field where one is at fault; <see cref="Reason"/> says which kind of fault it is.
/// </summary>
public sealed class InstructionSampleException(SampleFault reason, string file, string sampleId, string fault, Exception? inner = null)
    : InvalidFileException(file, $"sample \"{sampleId}\": {fault}", inner)
{
    public SampleFault Reason { get; } = reason;
    public string SampleId { get; } = sampleId;
}
