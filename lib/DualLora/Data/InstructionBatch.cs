using DualLora.Multimodal;

namespace DualLora.Data;

/// <summary>Collated instruction samples ready for the model, and the ids of the samples truncation shortened.</summary>
public sealed record InstructionBatch(MultimodalBatch Batch, IReadOnlyList<string> TruncatedSampleIds)
{
    public int TruncatedCount => TruncatedSampleIds.Count;
}
