using System.Net;
using System.Text;
using DualLora.Training;
using Microsoft.DotNet.Interactive.Formatting;
using TorchSharp;

namespace DualLora.Display;

/// <summary>
/// Registers how the library's values look in a notebook, through the .NET Interactive formatting API
/// (the same API the VS Code kernel and the project's headless runner use): tensors as a small table
/// with their shape and dtype, <see cref="PngImage"/> as image/png, <see cref="Figure"/>s (charts,
/// heatmaps) as HTML around a static SVG, <see cref="SourceListing"/> as code with its file and lines,
/// <see cref="Table"/> as a flat table, <see cref="TrainingProgress"/> as the block <see cref="TrainingDisplay"/> updates.
/// Call once at the top of a notebook.
/// </summary>
public static class Formatters
{
    /// <summary>Tensors with more elements than this show a summary instead of every value.</summary>
    public const int MaxTensorElements = 400;

    static readonly object Gate = new();
    static bool registered;

    /// <summary>Registers the formatters (once).</summary>
    public static void Register()
    {
        lock (Gate)
        {
            if (registered) return;
            Formatter.Register<torch.Tensor>((tensor, writer) => writer.Write(TensorHtml(tensor)), "text/html");
            Formatter.Register<torch.Tensor>((tensor, writer) => writer.Write(TensorText(tensor)), "text/plain");

            Formatter.Register<PngImage>((image, writer) => writer.Write(Convert.ToBase64String(image.Bytes)), "image/png");
            Formatter.Register<PngImage>((image, writer) =>
                writer.Write($"<img src=\"data:image/png;base64,{Convert.ToBase64String(image.Bytes)}\" width=\"{image.Width}\" height=\"{image.Height}\"/>"), "text/html");
            Formatter.Register<PngImage>((image, writer) => writer.Write($"PNG image {image.Width}x{image.Height}"), "text/plain");
            Formatter.SetPreferredMimeTypesFor(typeof(PngImage), "image/png");

            Formatter.Register<Figure>((figure, writer) => writer.Write(figure.ToHtml()), "text/html");
            Formatter.Register<Figure>((figure, writer) => writer.Write(figure.ToString()), "text/plain");
            Formatter.Register<SourceListing>((listing, writer) => writer.Write(listing.ToHtml()), "text/html");
            Formatter.Register<SourceListing>((listing, writer) => writer.Write(listing.ToString()), "text/plain");
            Formatter.Register<Table>((table, writer) => writer.Write(table.ToHtml()), "text/html");
            Formatter.Register<Table>((table, writer) => writer.Write(table.ToString()), "text/plain");
            Formatter.Register<TrainingProgress>((progress, writer) => writer.Write(TrainingDisplay.Html(progress)), "text/html");
            Formatter.Register<TrainingProgress>((progress, writer) => writer.Write(TrainingDisplay.Text(progress)), "text/plain");
            registered = true;
        }
    }

    static string Caption(torch.Tensor tensor) =>
        $"tensor [{string.Join(", ", tensor.shape)}] {tensor.dtype} on {tensor.device}{(tensor.requires_grad ? ", requires_grad" : "")}";

    static string TensorText(torch.Tensor tensor) =>
        tensor.NumberOfElements <= MaxTensorElements
            ? $"{Caption(tensor)}\n{tensor.ToString(TensorStringStyle.Numpy)}"
            : $"{Caption(tensor)} ({tensor.NumberOfElements} elements; not printed)";

    static string TensorHtml(torch.Tensor tensor)
    {
        var html = new StringBuilder();
        html.Append($"<div><code>{WebUtility.HtmlEncode(Caption(tensor))}</code>");
        if (tensor.NumberOfElements > MaxTensorElements || tensor.dim() > 2)
        {
            html.Append($"<pre>{WebUtility.HtmlEncode(tensor.NumberOfElements > MaxTensorElements ? $"{tensor.NumberOfElements} elements; not printed" : tensor.ToString(TensorStringStyle.Numpy))}</pre></div>");
            return html.ToString();
        }
        using var rows = tensor.detach().to(torch.CPU).reshape(tensor.dim() == 2 ? tensor.shape[0] : 1, -1);
        html.Append("<table>");
        for (long r = 0; r < rows.shape[0]; r++)
        {
            html.Append("<tr>");
            for (long c = 0; c < rows.shape[1]; c++)
            {
                using var element = rows[r, c];
                html.Append($"<td style=\"text-align:right\">{WebUtility.HtmlEncode(element.ToString(TensorStringStyle.Numpy))}</td>");
            }
            html.Append("</tr>");
        }
        html.Append("</table></div>");
        return html.ToString();
    }
}
