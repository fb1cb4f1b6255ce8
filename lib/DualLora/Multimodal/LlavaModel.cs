using DualLora.Adapters;
using DualLora.Language;
using DualLora.Vision;
using static TorchSharp.torch;

namespace DualLora.Multimodal;

/// <summary>The parts of a LLaVA-style model. What trains is the training stage's to say (<c>TrainingStage</c>).</summary>
/// <param name="Vision">The CLIP vision tower.</param>
/// <param name="Language">The LLaMA-style decoder.</param>
/// <param name="Vce">VCE's settings, or null for LLaVA's plain projector.</param>
/// <param name="SelectLayer">The hidden state projected without VCE (LLaVA-1.5: −2).</param>
public sealed record LlavaConfig(ClipVisionConfig Vision, LlamaConfig Language, VceConfig? Vce = null, int SelectLayer = -2)
{
    /// <summary>
    /// The project's small CPU model: the default 8-layer CLIP encoder on 56 x 56 grey images (an 8 x 8
    /// grid), VCE over hidden states −2, −4, −6, −8, and the default 4-layer decoder.
    /// </summary>
    public static LlavaConfig Small(bool withVce = true) => new(new ClipVisionConfig(), new LlamaConfig(), withVce ? new VceConfig() : null);

    /// <summary>The placeholder id of the image in input ids, as LLaVA's IMAGE_TOKEN_INDEX; never a vocabulary id.</summary>
    public const long ImageTokenId = -200;
    /// <summary>The label of positions the loss ignores (prompt, image and padding), as in LLaVA.</summary>
    public const long IgnoreIndex = -100;
}

/// <summary>A batch for the model: token ids with one <see cref="LlavaConfig.ImageTokenId"/> per sequence, right-padded.</summary>
/// <param name="InputIds">(batch, length).</param>
/// <param name="AttentionMask">(batch, length): 1 for real tokens, 0 for padding.</param>
/// <param name="Pixels">(batch, channels, height, width), one image per sequence.</param>
/// <param name="Labels">(batch, length): the token to predict at each position or −100; null when not training.</param>
public sealed record MultimodalBatch(Tensor InputIds, Tensor AttentionMask, Tensor Pixels, Tensor? Labels = null);

/// <summary>What the model computed: logits over the spliced sequence, the loss if labels were given, and VCE's output.</summary>
public sealed record LlavaOutput(Tensor Logits, Tensor? Loss, Tensor AttentionMask, Tensor? Labels, VceOutput? Vce);

/// <summary>
/// A LLaVA-style vision-language model: the vision tower's features go through the connector (VCE, then
/// the projector) and replace the <c>&lt;image&gt;</c> placeholder of each sequence in the decoder's input
/// embeddings; the image positions, like the prompt, carry label −100, so only answers are learned.
/// Modules: <c>vision_tower</c>, <c>connector</c> (<c>connector.vce</c>, <c>connector.mm_projector</c>) and
/// <c>language_model</c> (<c>language_model.model.layers.N.self_attn.q_proj</c>, ...).
/// </summary>
public sealed class LlavaModel : nn.Module<MultimodalBatch, LlavaOutput>, IDefaultAdapterTargets
{
    public readonly ClipVisionModel vision_tower;
    public readonly VisionConnector connector;
    public readonly LlamaForCausalLM language_model;

    public LlavaConfig Config { get; }

    /// <summary>
    /// The adapters' default targets in this model (METHOD.md §1): q_proj and v_proj of every decoder layer and
    /// nothing else; the vision tower's own q_proj and v_proj are plain linear layers and stay untouched.
    /// Injection uses it when a config names no targets: <c>AdapterInjection.Inject(model, new DualLoraConfig(Rank: 32))</c>.
    /// </summary>
    public const string DecoderQueryValue = @"language_model\.model\.layers\.\d+\.self_attn\.(q_proj|v_proj)";

    public string DefaultAdapterTargets => DecoderQueryValue;

    /// <summary>
    /// Reuses the vision tower's features per image while the tower is frozen (see <see cref="TowerFeatureCache"/>);
    /// null (the default): the tower runs on every batch. The model does not own it: whoever sets it disposes it.
    /// </summary>
    public TowerFeatureCache? TowerCache { get; set; }

    public LlavaModel(LlavaConfig config, ScalarType? dtype = null)
        : this(config, new ClipVisionModel(config.Vision, dtype), new LlamaForCausalLM(config.Language, dtype), dtype)
    {
    }

    /// <summary>Assembles loaded parts (see <c>HuggingFaceModels</c>) with a new connector between them.</summary>
    public LlavaModel(ClipVisionModel visionTower, LlamaForCausalLM languageModel, VceConfig? vce, ScalarType? dtype = null)
        : this(new LlavaConfig(visionTower.Config, languageModel.Config, vce), visionTower, languageModel, dtype)
    {
    }

    LlavaModel(LlavaConfig config, ClipVisionModel visionTower, LlamaForCausalLM languageModel, ScalarType? dtype) : base(nameof(LlavaModel))
    {
        Config = config;
        vision_tower = visionTower;
        connector = new VisionConnector(config.Vision, config.Language.HiddenSize, config.Vce, config.SelectLayer, dtype);
        language_model = languageModel;
        RegisterComponents();
    }

    public override LlavaOutput forward(MultimodalBatch batch)
    {
        var (embeds, mask, labels, vce) = Prepare(batch);
        var logits = language_model.Logits(embeds, mask);
        Tensor? loss = null;
        if (labels is not null)
        {
            // Position t predicts token t + 1.
            long vocab = logits.shape[^1];
            loss = nn.functional.cross_entropy(logits[.., ..^1].reshape(-1, vocab), labels[.., 1..].reshape(-1), ignore_index: LlavaConfig.IgnoreIndex);
        }
        return new LlavaOutput(logits, loss, mask, labels, vce);
    }

    /// <summary>
    /// The decoder's input: text embeddings with each sequence's image placeholder replaced by its image
    /// tokens, and the attention mask and labels stretched to match (−100 on the image tokens).
    /// </summary>
    public (Tensor Embeds, Tensor Mask, Tensor? Labels, VceOutput? Vce) Prepare(MultimodalBatch batch)
    {
        var ids = batch.InputIds;
        long size = ids.shape[0], length = ids.shape[1];
        var isImage = ids.eq(LlavaConfig.ImageTokenId);
        var perSequence = isImage.sum(1);
        if (!perSequence.eq(1).all().item<bool>())
            throw new ArgumentException($"every sequence needs exactly one image placeholder ({LlavaConfig.ImageTokenId}); found [{string.Join(", ", perSequence.data<long>().ToArray())}].");
        if (batch.Pixels.shape[0] != size)
            throw new ArgumentException($"{size} sequences but {batch.Pixels.shape[0]} images.");

        var grid = Config.Vision.GridSize;
        var (imageTokens, vce) = TowerCache is { } cache && !batch.Pixels.requires_grad && !vision_tower.parameters().Any(p => p.requires_grad)
            ? connector.Connect(cache.Features(vision_tower, connector.ReadLevels, batch.Pixels), grid, grid)
            : connector.Connect(vision_tower.Encode(batch.Pixels), grid, grid);                          // (batch, patches, D)
        long patches = imageTokens.shape[1];
        var text = language_model.model.embed_tokens.call(ids.clamp_min(0));                            // the placeholder's row is replaced below

        // One gather for the whole batch instead of slices per sequence (a step's operations then do not grow with the batch):
        // output position j of a sequence whose placeholder is at p reads text j before p, image token j - p up to
        // p + patches, then text j - patches + 1; image token i sits at column length + i of [text, image].
        var at = isImage.to(ScalarType.Int64).argmax(1, keepdim: true);                                  // (batch, 1)
        var position = arange(length - 1 + patches, device: ids.device).unsqueeze(0);                     // (1, length - 1 + patches)
        var inImage = position.ge(at) & position.lt(at + patches);
        var source = where(inImage, position - at + length, where(position.lt(at), position, position - patches + 1));   // (batch, length - 1 + patches)
        var embeds = cat([text, imageTokens], 1).gather(1, source.unsqueeze(-1).expand(-1, -1, text.shape[2]));
        var mask = cat([batch.AttentionMask, ones(size, patches, dtype: batch.AttentionMask.dtype, device: ids.device)], 1).gather(1, source);
        var labels = batch.Labels is { } l
            ? cat([l, full(size, patches, LlavaConfig.IgnoreIndex, dtype: l.dtype, device: ids.device)], 1).gather(1, source)
            : null;
        return (embeds, mask, labels, vce);
    }
}
