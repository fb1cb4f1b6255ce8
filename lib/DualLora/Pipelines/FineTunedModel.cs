using DualLora.Adapters;
using DualLora.Data;
using DualLora.Evaluation;
using DualLora.IO;
using DualLora.Multimodal;
using Microsoft.ML.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace DualLora.Pipelines;

/// <summary>
/// A model ready to answer: a base LLaVA model, or a fine-tuned one rebuilt from a run's final folder (the base model
/// and VCE its <c>finetune_config.json</c> names, the trained connector, the adapter), with its tokenizer and collator.
/// </summary>
public sealed class FineTunedModel : IDisposable
{
    public LlavaModel Model { get; }
    public LlamaTokenizer Tokenizer { get; }
    public InstructionCollator Collator { get; }
    /// <summary>The loaded adapter, or null (a base model, or a run whose stage 2 was skipped).</summary>
    public AdapterHandle? Adapters { get; }

    FineTunedModel(LlavaModel model, LlamaTokenizer tokenizer, int maxLength, AdapterHandle? adapters)
    {
        Model = model;
        Tokenizer = tokenizer;
        Collator = InstructionCollator.For(tokenizer, ImagePreprocessing.ForVisionTower(model.Config.Vision), maxLength);
        Adapters = adapters;
    }

    /// <summary>A llava-hf folder as it is, without VCE or adapter: the baseline; the tokenizer defaults to the folder's.</summary>
    public static FineTunedModel Base(string modelFolder, string? tokenizer = null, Device? device = null)
    {
        var tokenizerFile = tokenizer ?? Path.Combine(modelFolder, "tokenizer.model");
        var loadedTokenizer = HuggingFaceModels.LoadTokenizerFile(tokenizerFile);
        var model = HuggingFaceModels.LoadLlava(modelFolder);
        if (device is not null && device.type != DeviceType.CPU) model.to(device);
        return new FineTunedModel(model, loadedTokenizer, 2048, null);
    }

    /// <summary>
    /// The model a run ended with, from its final folder (<c>OUT/final</c>; the run's folder <c>OUT</c> is taken to mean
    /// its final folder): the base model with VCE as trained, the connector's weights and the adapter.
    /// </summary>
    public static FineTunedModel FromRun(string folder, Device? device = null)
    {
        folder = Path.GetFullPath(folder);
        if (!File.Exists(Path.Combine(folder, FineTuning.ConfigFile)) && File.Exists(Path.Combine(folder, FineTuning.FinalFolder, FineTuning.ConfigFile)))
            folder = Path.Combine(folder, FineTuning.FinalFolder);
        string configFile = Path.Combine(folder, FineTuning.ConfigFile), connectorFile = Path.Combine(folder, FineTuning.ConnectorFile);
        if (!File.Exists(configFile)) throw new FileNotFoundException($"{folder}: not the final folder of a training run ({FineTuning.ConfigFile} is missing).");
        if (!File.Exists(connectorFile)) throw new FileNotFoundException($"{folder}: {FineTuning.ConnectorFile} is missing.");
        var config = FineTuningConfig.Read(configFile);
        if (!Directory.Exists(config.Model)) throw new FileNotFoundException($"{configFile}: field 'model': the base model folder {config.Model} does not exist.");
        if (!File.Exists(config.Tokenizer)) throw new FileNotFoundException($"{configFile}: field 'tokenizer': {config.Tokenizer} does not exist.");

        var tokenizer = HuggingFaceModels.LoadTokenizerFile(config.Tokenizer);
        var model = HuggingFaceModels.LoadLlava(config.Model, config.Vce);
        try
        {
            FineTuning.LoadConnector(model, connectorFile);
            string adapterFolder = Path.Combine(folder, Training.TrainingCheckpoint.AdapterFolder);
            var adapters = Directory.Exists(adapterFolder) ? AdapterFiles.Load(model, adapterFolder) : null;
            if (device is not null && device.type != DeviceType.CPU) model.to(device);
            model.eval();
            return new FineTunedModel(model, tokenizer, config.MaxLength, adapters);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Evaluates on LLaVA instruction data and writes predictions.jsonl and metrics.json into <paramref name="outFolder"/>.</summary>
    public EvaluationResult Evaluate(LlavaInstructionData data, EvaluationOptions options, string outFolder)
    {
        var result = new GenerationEvaluator(Model, Tokenizer, Collator, options).Evaluate(data);
        result.Write(outFolder);
        return result;
    }

    public void Dispose() => Model.Dispose();
}
