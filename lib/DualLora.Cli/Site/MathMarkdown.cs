using System.Net;
using System.Text;
using Markdig;

namespace DualLora.Cli.Site;

/// <summary>
/// Markdown to HTML with the TeX of <c>$...$</c> and <c>$$...$$</c> passed through untouched: the math is cut
/// out before Markdig sees the text (emphasis would eat its underscores, escapes its backslashes) and put
/// back afterwards, HTML-escaped, in <c>span.math</c> elements that the page script renders with KaTeX.
/// </summary>
public static class MathMarkdown
{
    // No generic attributes (they read "{...}" as attributes) and no Markdig math (it misses "$|$" and
    // display math that spans lines): math never reaches Markdig.
    static readonly MarkdownPipeline Pipeline = new MarkdownPipelineBuilder()
        .UseAutoIdentifiers(Markdig.Extensions.AutoIdentifiers.AutoIdentifierOptions.GitHub)
        .UsePipeTables().UseEmphasisExtras().UseAutoLinks().UseTaskLists().UseFootnotes()
        .Build();

    // Each math span becomes one private-use character: Markdig treats it like a letter, so emphasis and
    // tables around it behave as around a word, and heading identifiers leave it out.
    const char FirstPlaceholder = '\uE000';
    const int PlaceholderCount = 0x1000;

    readonly record struct Equation(string Tex, bool Display);

    public static string ToHtml(string markdown)
    {
        if (markdown.Any(IsPlaceholder))
            throw new InvalidDataException("the markdown contains characters of the private-use range U+E000-U+EFFF, which the math protection reserves.");
        var math = new List<Equation>();
        string protectedText = Protect(markdown, math);
        return Restore(Markdown.ToHtml(protectedText, Pipeline), math);
    }

    static bool IsPlaceholder(char c) => c >= FirstPlaceholder && c < FirstPlaceholder + PlaceholderCount;

    static string Protect(string text, List<Equation> math)
    {
        var result = new StringBuilder(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            if (IsLineStart(text, i) && FenceEnd(text, i) is int fenceEnd)
            {
                result.Append(text, i, fenceEnd - i);
                i = fenceEnd;
                continue;
            }
            char c = text[i];
            if (c == '\\' && i + 1 < text.Length)
            {
                result.Append(text, i, 2);
                i += 2;
            }
            else if (c == '`')
            {
                int end = CodeSpanEnd(text, i);
                result.Append(text, i, end - i);
                i = end;
            }
            else if (c == '$' && MathEnd(text, i) is (int end, bool display))
            {
                int delimiter = display ? 2 : 1;
                if (math.Count == PlaceholderCount) throw new InvalidDataException($"more than {PlaceholderCount} equations in one markdown cell.");
                math.Add(new Equation(text[(i + delimiter)..(end - delimiter)].Trim(), display));
                result.Append((char)(FirstPlaceholder + math.Count - 1));
                i = end;
            }
            else
            {
                result.Append(c);
                i++;
            }
        }
        return result.ToString();
    }

    static bool IsLineStart(string text, int i) => i == 0 || text[i - 1] == '\n';

    /// <summary>The end of a fenced code block starting at this line, or null when the line opens none.</summary>
    static int? FenceEnd(string text, int lineStart)
    {
        if (FenceRun(text, lineStart) is not (char fence, int length, _)) return null;
        // The block runs to a line of at least as many of the same fence characters, or to the end.
        for (int next = NextLine(text, lineStart); next < text.Length; next = NextLine(text, next))
            if (FenceRun(text, next) is (char closing, int closingLength, int runEnd) && closing == fence && closingLength >= length
                && text[runEnd..LineEnd(text, next)].Trim().Length == 0)
                return NextLine(text, next);
        return text.Length;
    }

    /// <summary>The fence character, run length and run end a line starts with (after up to three spaces), if three or more.</summary>
    static (char Fence, int Length, int End)? FenceRun(string text, int lineStart)
    {
        int i = lineStart;
        while (i < text.Length && text[i] == ' ' && i - lineStart < 3) i++;
        if (i >= text.Length || text[i] is not ('`' or '~')) return null;
        int length = 0;
        while (i + length < text.Length && text[i + length] == text[i]) length++;
        return length >= 3 ? (text[i], length, i + length) : null;
    }

    static int LineEnd(string text, int i) => text.IndexOf('\n', i) is int end and >= 0 ? end : text.Length;
    static int NextLine(string text, int i) => Math.Min(text.Length, LineEnd(text, i) + 1);

    /// <summary>The end of the code span opened by the backtick run at <paramref name="start"/> (CommonMark: a run of equal length closes it).</summary>
    static int CodeSpanEnd(string text, int start)
    {
        int length = 0;
        while (start + length < text.Length && text[start + length] == '`') length++;
        int i = start + length;
        while (i < text.Length)
        {
            int close = text.IndexOf('`', i);
            if (close < 0) break;
            int run = 0;
            while (close + run < text.Length && text[close + run] == '`') run++;
            if (run == length) return close + run;
            i = close + run;
        }
        return start + length;
    }

    /// <summary>
    /// Where the math opened at <paramref name="start"/> ends (after its closing delimiter), as Pandoc reads
    /// TeX math: <c>$$</c> closes at the next <c>$$</c>; an inline <c>$</c> needs a non-space after it, a
    /// non-space before its closing <c>$</c>, no digit right after that (so "$5 and $6" stays text) and no
    /// blank line inside.
    /// </summary>
    static (int End, bool Display)? MathEnd(string text, int start)
    {
        if (start + 1 < text.Length && text[start + 1] == '$')
        {
            int close = text.IndexOf("$$", start + 2, StringComparison.Ordinal);
            return close > start + 2 ? (close + 2, true) : null;
        }
        if (start + 1 >= text.Length || char.IsWhiteSpace(text[start + 1])) return null;
        for (int i = start + 1; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\\') { i++; continue; }
            if (c == '\n' && IsBlankLineAfter(text, i)) return null;
            if (c == '$' && !char.IsWhiteSpace(text[i - 1]) && (i + 1 == text.Length || !char.IsAsciiDigit(text[i + 1])))
                return (i + 1, false);
        }
        return null;
    }

    static bool IsBlankLineAfter(string text, int newline)
    {
        int i = newline + 1;
        while (i < text.Length && text[i] is ' ' or '\t' or '\r') i++;
        return i >= text.Length || text[i] == '\n';
    }

    /// <summary>Puts the math back: as an element in text, as plain TeX inside a tag's attribute (an image's alt text).</summary>
    static string Restore(string html, List<Equation> math)
    {
        var result = new StringBuilder(html.Length);
        bool insideTag = false;
        foreach (char c in html)
        {
            if (c == '<') insideTag = true;
            else if (c == '>') insideTag = false;
            if (!IsPlaceholder(c))
            {
                result.Append(c);
                continue;
            }
            var (tex, display) = math[c - FirstPlaceholder];
            string encoded = WebUtility.HtmlEncode(tex);
            result.Append(insideTag ? encoded : display ? $"<span class=\"math display\">{encoded}</span>" : $"<span class=\"math\">{encoded}</span>");
        }
        return result.ToString();
    }
}
