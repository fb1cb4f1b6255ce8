using Microsoft.DotNet.Interactive.Formatting;

namespace DualLora.Display;

/// <summary>
/// A value shown once in a notebook and then replaced in place, as a progress display is: every
/// <see cref="Update"/> becomes the kernel's display update (Jupyter's update_display_data), not a new output.
/// </summary>
/// <remarks>
/// The kernel's own <c>display(x)</c> of this build (.NET Interactive 1.0.0-beta.26120.1) publishes one
/// displayed value and returns another with a fresh id, so its updates carry an id no output has and show up
/// as a second output (VS Code), or not at all (Jupyter drops an update for an unknown display id).
/// <see cref="Show"/> keeps the value the kernel actually published, seen through the formatting API's
/// public subscription, and updates that one; where a host publishes differently it falls back to the value
/// <c>Display</c> returned. Only the formatting API is used, so the library does not depend on the kernel.
/// </remarks>
public sealed class LiveDisplay
{
    readonly DisplayedValue shown;

    LiveDisplay(DisplayedValue shown) => this.shown = shown;

    /// <summary>The id of the displayed output the updates replace.</summary>
    public string DisplayId => shown.DisplayId;

    /// <summary>Displays <paramref name="value"/> (as the registered formatters show it, or as <paramref name="mimeTypes"/>).</summary>
    public static LiveDisplay Show(object value, params string[] mimeTypes)
    {
        DisplayedValue? published = null;
        DisplayedValue returned;
        using (Formatter.SubscribeToDisplayedValues(d =>
               {
                   if (!d.IsUpdated && ReferenceEquals(d.Value, value)) published ??= d;
               }))
        {
            returned = value.Display(mimeTypes);
        }
        return new LiveDisplay(published ?? returned);
    }

    /// <summary>Replaces the shown value with <paramref name="value"/>, in the same mime types.</summary>
    public void Update(object value) => shown.Update(value);
}
