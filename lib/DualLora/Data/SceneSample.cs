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
}
