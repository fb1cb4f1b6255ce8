using TorchSharp;

namespace DualLora.IO;

/// <summary>
/// The storage of a contiguous CPU tensor as byte spans of at most 1 GiB each, in order, because a span
/// (and TorchSharp's <c>Tensor.bytes</c>) cannot exceed int.MaxValue bytes while checkpoint tensors can.
/// </summary>
public static class TensorBytes
{
    const long BlockBytes = 1L << 30;

    public delegate void BlockAction(Span<byte> block, long byteOffset);

    public static void ForEachBlock(torch.Tensor tensor, BlockAction action)
    {
        if (tensor.device_type != DeviceType.CPU || !tensor.is_contiguous())
            throw new ArgumentException("TensorBytes needs a contiguous CPU tensor.", nameof(tensor));
        long elements = tensor.NumberOfElements;
        if (elements == 0) return;
        long perBlock = Math.Max(1, BlockBytes / tensor.ElementSize);
        using var flat = tensor.view(-1);
        for (long start = 0; start < elements; start += perBlock)
        {
            using var part = flat.narrow(0, start, Math.Min(perBlock, elements - start));
            action(part.bytes, start * tensor.ElementSize);
        }
    }
}
