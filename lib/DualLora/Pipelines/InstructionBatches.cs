using DualLora.Data;
using DualLora.Multimodal;
using DualLora.Training;

namespace DualLora.Pipelines;

/// <summary>
/// Where data meets training: LLaVA-format samples become the trainer's batches, epoch by epoch in a
/// seeded shuffle (<see cref="ShuffledOrder"/>), each batch collated when the trainer asks for its
/// position, so a resumed run reads exactly the batches an unbroken one would.
/// </summary>
public static class InstructionBatches
{
    public static IBatchSource<MultimodalBatch> Shuffled(LlavaInstructionData data, IReadOnlyList<InstructionSample> samples, InstructionCollator collator, int batchSize, long seed)
    {
        var order = new ShuffledOrder(samples.Count, batchSize, seed);
        return BatchSource.Of(position => collator.Collate(data, order.IndicesAt(position).Select(i => samples[i]).ToList()).Batch);
    }
}
