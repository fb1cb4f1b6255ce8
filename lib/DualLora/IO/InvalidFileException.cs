namespace DualLora.IO;

/// <summary>
/// A file the library cannot read as what it should be: its message is <c>{file}: {fault}</c>, the fault naming
/// the field (a tensor, a JSON key) where one is at fault. Every reader of the library reports bad input with it,
/// before it allocates anything the file's contents ask for.
/// </summary>
public class InvalidFileException(string file, string fault, Exception? inner = null) : IOException($"{file}: {fault}", inner)
{
    /// <summary>The file at fault, as the message names it.</summary>
    public string File { get; } = file;

    /// <summary>What is wrong with it, without the file's name.</summary>
    public string Fault { get; } = fault;
}
