namespace DualLora.Data;

/// <summary>The three parts of the scene suite, each built from its own source images.</summary>
public enum SceneSplit
{
    Training,
    Validation,
    Evaluation,
}
