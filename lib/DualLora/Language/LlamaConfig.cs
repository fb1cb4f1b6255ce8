namespace DualLora.Language;

/// <summary>
/// The fields of a Hugging Face <c>LlamaForCausalLM</c> config.json that the decoder needs, with their
/// HF names in the comments. The defaults are the project's small CPU model, not LLaMA's.
/// </summary>
public sealed record LlamaConfig(
    int VocabSize = 1024,              // vocab_size
    int HiddenSize = 192,              // hidden_size
    int IntermediateSize = 512,        // intermediate_size
    int NumHiddenLayers = 4,           // num_hidden_layers
    int NumAttentionHeads = 6,         // num_attention_heads
    int NumKeyValueHeads = 2,          // num_key_value_heads (grouped-query attention when fewer than the heads)
    double RmsNormEps = 1e-5,          // rms_norm_eps
    double RopeTheta = 10000,          // rope_theta
    int MaxPositionEmbeddings = 1024,  // max_position_embeddings
    bool TieWordEmbeddings = false)    // tie_word_embeddings
{
    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>
    /// The parameters of <c>LlamaForCausalLM</c> with these sizes, counted from the config alone (a loader compares it
    /// with a checkpoint before it builds anything): the embedding, per layer the attention's four projections, the
    /// MLP's three and two norms, the final norm, and the output head (its own matrix even when tied, as built).
    /// </summary>
    public long ParameterCount()
    {
        long hidden = HiddenSize, kvWidth = (long)NumKeyValueHeads * HeadDim;
        long layer = 2 * hidden * hidden + 2 * hidden * kvWidth + 3 * hidden * IntermediateSize + 2 * hidden;
        return 2L * VocabSize * hidden + NumHiddenLayers * layer + hidden;
    }

    public void Validate()
    {
        void Require(bool condition, string field, string fault)
        {
            if (!condition) throw new ArgumentException($"{field}: {fault}");
        }
        Require(HiddenSize % NumAttentionHeads == 0, "hidden_size", $"{HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}.");
        Require(NumAttentionHeads % NumKeyValueHeads == 0, "num_key_value_heads", $"{NumKeyValueHeads} does not divide num_attention_heads {NumAttentionHeads}.");
        Require(HeadDim % 2 == 0, "hidden_size", $"the head size {HeadDim} must be even for rotary positions.");
        Require(VocabSize > 0 && IntermediateSize > 0 && NumHiddenLayers > 0, "config", "sizes must be positive.");
    }
}
