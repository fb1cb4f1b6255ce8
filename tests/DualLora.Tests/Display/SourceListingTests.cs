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
    public void Unknown_members_and_files_are_clear_errors()
    {
        Assert.Contains("no member named 'Nope'", Assert.Throws<ArgumentException>(() => SourceListing.Member("lib/DualLora/Runtime/TorchRuntime.cs", "Nope")).Message);
        Assert.Contains("lib/Nope.cs", Assert.Throws<FileNotFoundException>(() => SourceListing.Member("lib/Nope.cs", "X")).Message);
    }
}
