using System.Globalization;

namespace DualLora.Data;

/// <summary>What a task asks about one scene: the subject its phrasings name (a position, a class, a group; empty when none) and the answer.</summary>
public readonly record struct SceneQuestion(string Subject, string Answer);

/// <summary>
/// One task of the scene suite: its name (the sample's "task" field), two or more phrasings of its
/// instruction (format strings where <c>{0}</c> is the subject), and how it picks a question about a scene
/// and answers it. The random source is the suite's, so a question is as deterministic as the seed.
/// </summary>
public sealed record SceneTask(string Name, IReadOnlyList<string> Phrasings, Func<FashionScene, Random, SceneQuestion> Ask)
{
    public string Instruction(int phrasing, string subject) => string.Format(CultureInfo.InvariantCulture, Phrasings[phrasing], subject);
}
