using DualLora.Display;

namespace DualLora.Tests.Display;

public class SourceListingTests
{
    [Fact]
    public void A_member_is_listed_with_its_doc_comment_through_its_closing_brace()
    {
        var listing = SourceListing.Member("lib/DualLora/Runtime/TorchRuntime.cs", "EnsureLoaded");
        string[] lines = listing.Text.Split('\n');
        Assert.Equal("lib/DualLora/Runtime/TorchRuntime.cs", listing.File);
        Assert.StartsWith("public static TorchNativeLoad EnsureLoaded()", lines[0]);
        Assert.Contains("return loaded ??= Load();", listing.Text);
        Assert.Equal("}", lines[^1]);
        Assert.Equal(listing.LastLine - listing.FirstLine + 1, lines.Length);
        string fileLine = File.ReadAllLines(Path.Combine(Path.GetDirectoryName(DualLora.Runtime.RuntimeEnvironment.Find(AppContext.BaseDirectory).SourceFile)!, listing.File))[listing.FirstLine - 1];
        Assert.Equal(lines[0], fileLine.Trim());
    }

    [Fact]
    public void A_call_of_the_member_before_its_declaration_is_not_taken_for_it()
    {
        // AdaptableLinear.Detach calls Unmerge() a few lines before Unmerge is declared.
        var listing = SourceListing.Member("lib/DualLora/Adapters/AdaptableLinear.cs", "Unmerge");
        Assert.Contains("internal void Unmerge()", listing.Text);
        Assert.DoesNotContain("Detach", listing.Text);
        var tuple = SourceListing.Member("lib/DualLora/Adapters/DualLoraAdapter.cs", "Subspaces");
        Assert.Contains("public (Tensor Skill, Tensor Task) Subspaces(Tensor x, bool training = false)", tuple.Text);
    }

    [Fact]
    public void A_bare_call_or_member_access_before_the_declaration_is_not_taken_for_it()
    {
        // The constructor calls ResetParameters(); the listing must be the method with Deformable DETR's initialisation.
        var listing = SourceListing.Member("lib/DualLora/Vision/VisualCueEnhancement.cs", "ResetParameters");
        Assert.StartsWith("/// <summary>", listing.Text);
        Assert.Contains("void ResetParameters()", listing.Text);
        Assert.Contains("sampling_offsets.bias!.copy_(ring.flatten());", listing.Text);

        string file = Path.Combine(Path.GetTempPath(), $"source-listing-{Guid.NewGuid():N}.cs");
        File.WriteAllLines(file,
        [
            "class Sample",
            "{",
            "    Sample()",
            "    {",
            "        Reset();",
            "        this.Reset();",
            "        int n = Count(1,",
            "            Reset(),",
            "            2);",
            "    }",
            "",
            "    /// <summary>Puts everything back.</summary>",
            "    [Obsolete]",
            "    void Reset() => Count(0, 0, 0);",
            "",
            "    static int Count(int a, int b, int c) { return a + b + c; }",
            "}",
        ]);
        try
        {
            var reset = SourceListing.Member(file, "Reset");
            Assert.Equal((12, 14), (reset.FirstLine, reset.LastLine));
            Assert.Equal("/// <summary>Puts everything back.</summary>\n[Obsolete]\nvoid Reset() => Count(0, 0, 0);", reset.Text);
            var constructor = SourceListing.Member(file, "Sample");
            Assert.Equal((1, 17), (constructor.FirstLine, constructor.LastLine));   // the class, declared first
            Assert.Equal(16, SourceListing.Member(file, "Count").FirstLine);
        }
        finally { File.Delete(file); }
    }

    [Theory]
    [InlineData("    Sample(int width)", true)]
    [InlineData("    Sample(int width) : base(nameof(Sample))", true)]
    [InlineData("    public (Tensor Skill, Tensor Task) Sample(Tensor x)", true)]
    [InlineData("    Sample();", false)]
    [InlineData("    x.Sample();", false)]
    [InlineData("    await Sample();", false)]
    [InlineData("    var y = Sample();", false)]
    [InlineData("        Sample(a),", false)]
    public void Declarations_are_told_from_uses(string line, bool declares) =>
        Assert.Equal(declares, SourceListing.Declares(line, "Sample"));

    [Fact]
    public void Unknown_members_and_files_are_clear_errors()
    {
        Assert.Contains("no member named 'Nope'", Assert.Throws<ArgumentException>(() => SourceListing.Member("lib/DualLora/Runtime/TorchRuntime.cs", "Nope")).Message);
        Assert.Contains("lib/Nope.cs", Assert.Throws<FileNotFoundException>(() => SourceListing.Member("lib/Nope.cs", "X")).Message);
    }
}
