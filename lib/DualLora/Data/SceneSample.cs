namespace DualLora.Data;

/// <summary>
/// One instruction of the scene suite about one scene, as LLaVA writes a sample: the human turn is
/// <see cref="HumanTurn"/> (the <c>&lt;image&gt;</c> placeholder, a newline, the instruction), the gpt turn the
/// answer. <see cref="Phrasing"/> is the index of the task's phrasing the instruction uses.
/// </summary>
public sealed record SceneSample(string Id, SceneSplit Split, int SceneIndex, string Task, int Phrasing, string Instruction, string Answer)
{
    public const string ImagePlaceholder = "<image>";

    public string HumanTurn => $"{ImagePlaceholder}\n{Instruction}";

    /// <summary>
    /// The sample as <see cref="LlavaInstructionData"/> would read it from the suite's export, without the file: the
    /// image path is the one the export writes (relative to its folder), the task is the <c>task</c> field.
    /// </summary>
    public InstructionSample ToInstructionSample() =>
        new(Id, SceneSuiteExport.ImagePath(Split, SceneIndex),
            [new ConversationTurn(TurnRole.Human, HumanTurn), new ConversationTurn(TurnRole.Gpt, Answer)],
            new Dictionary<string, string> { ["task"] = Task });
}
