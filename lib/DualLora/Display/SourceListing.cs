using System.Net;
using System.Text.RegularExpressions;
using DualLora.Runtime;

namespace DualLora.Display;

/// <summary>
/// A piece of the library's own source, shown in a notebook so that the notebook teaches the code that
/// runs rather than a copy of it: a member (with its doc comment) or a <c>#region</c> of a file.
/// </summary>
public sealed record SourceListing(string File, int FirstLine, int LastLine, string Text)
{
    /// <summary>
    /// The member named <paramref name="member"/> (a type, method, property or constructor) in
    /// <paramref name="file"/>, a path relative to the project root (the folder of environment.json).
    /// </summary>
    public static SourceListing Member(string file, string member)
    {
        var lines = Read(file, out string relative);
        int start = Array.FindIndex(lines, line => Declares(line, member));
        if (start < 0) throw new ArgumentException($"{relative}: no member named '{member}'.");
        int first = start;
        while (first > 0 && (lines[first - 1].TrimStart().StartsWith("///", StringComparison.Ordinal) || lines[first - 1].TrimStart().StartsWith('['))) first--;
        int last = EndOfBlock(lines, start);
        return new SourceListing(relative, first + 1, last + 1, Dedent(lines[first..(last + 1)]));
    }

    // Statements that merely mention the member (a call, an assignment) are not its declaration.
    static readonly Regex Statement = new(@"^\s*(//|if\b|else\b|return\b|var\b|foreach\b|for\b|while\b|using\b|throw\b|await\b|yield\b|case\b|lock\b)|=(?!>)|\bnew\b");
    static readonly Regex Attributes = new(@"^\s*(\[[^\]]*\]\s*)*");

    /// <summary>
    /// Whether <paramref name="line"/> declares <paramref name="member"/>: modifiers and a type (or a type
    /// keyword) before the name, separated from it by a space, and a parameter list, body, arrow, base list
    /// or end of line after it. A bare call (<c>Member();</c>), a member access (<c>x.Member()</c>) and a
    /// statement that uses the member are not declarations; a constructor written without modifiers is one.
    /// </summary>
    internal static bool Declares(string line, string member)
    {
        var name = Regex.Match(line, $@"(?<![\w.]){Regex.Escape(member)}\b");
        if (!name.Success) return false;
        var declaration = new Regex($@"^\s*(\[.*\]\s*)*((public|internal|private|protected|static|sealed|abstract|readonly|partial|override|virtual|unsafe|async|const|new)\s+)*[\w<>\[\]?,.() ]*\b{Regex.Escape(member)}\b\s*(<[^>]*>)?\s*(\(|\{{|=>|:|$|\s)");
        if (!declaration.IsMatch(line)) return false;
        string before = Attributes.Replace(line[..name.Index], "", 1);
        if (Statement.IsMatch(before)) return false;
        if (before.Length > 0) return char.IsWhiteSpace(before[^1]);
        string code = Regex.Replace(line, @"//.*$", "").TrimEnd();
        return !code.EndsWith(',') && (!code.EndsWith(';') || code.Contains("=>"));
    }

    /// <summary>The lines between <c>#region name</c> and its <c>#endregion</c>.</summary>
    public static SourceListing Region(string file, string name)
    {
        var lines = Read(file, out string relative);
        int start = Array.FindIndex(lines, l => l.Trim() == $"#region {name}");
        if (start < 0) throw new ArgumentException($"{relative}: no #region {name}.");
        int end = Array.FindIndex(lines, start + 1, l => l.Trim().StartsWith("#endregion", StringComparison.Ordinal));
        if (end < 0) throw new ArgumentException($"{relative}: #region {name} has no #endregion.");
        return new SourceListing(relative, start + 2, end, Dedent(lines[(start + 1)..end]));
    }

    static string[] Read(string file, out string relative)
    {
        string root = Path.GetDirectoryName(RuntimeEnvironment.Find().SourceFile)!;
        string path = Path.GetFullPath(Path.Combine(root, file));
        relative = Path.GetRelativePath(root, path).Replace('\\', '/');
        if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"{relative}: no such file in the project.");
        return System.IO.File.ReadAllLines(path);
    }

    // A member ends where the braces opened from its declaration close, or at the ';' of an expression body.
    static int EndOfBlock(string[] lines, int start)
    {
        int depth = 0;
        bool opened = false;
        for (int i = start; i < lines.Length; i++)
        {
            string code = Regex.Replace(lines[i], @"""([^""\\]|\\.)*""|'([^'\\]|\\.)*'|//.*$", "");
            foreach (char c in code)
            {
                if (c == '{') { depth++; opened = true; }
                else if (c == '}') depth--;
            }
            if (opened && depth <= 0) return i;
            if (!opened && code.TrimEnd().EndsWith(';')) return i;
        }
        return lines.Length - 1;
    }

    static string Dedent(string[] lines)
    {
        int indent = lines.Where(l => l.Trim().Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
        return string.Join("\n", lines.Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()));
    }

    public string ToHtml() =>
        $"<div><div style=\"color:#57606a;font-size:.85em\">{WebUtility.HtmlEncode(File)}, lines {FirstLine}–{LastLine}</div>" +
        $"<pre><code class=\"language-csharp\">{WebUtility.HtmlEncode(Text)}</code></pre></div>";

    public override string ToString() => $"// {File}, lines {FirstLine}-{LastLine}\n{Text}";
}
