using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DualLora.Adapters;

/// <summary>LoRA: Delta(x) = s · B A dropout(x), A kaiming-uniform (a = √5), B zero, so it starts as a no-op.</summary>
public sealed class LoraAdapter : Adapter, IMergeableAdapter
{
    public readonly Linear lora_A;
    public readonly Linear lora_B;
    readonly double dropout;
    readonly Scalar scaling;   // held, so the GC cannot finalize it while LibTorch reads it

    public double Scaling { get; }

    public LoraAdapter(long inFeatures, long outFeatures, LoraConfig config, Device device, ScalarType dtype) : base(nameof(LoraAdapter))
    {
        config.Validate();
        lora_A = nn.Linear(inFeatures, config.Rank, hasBias: false, device: device, dtype: dtype);
        lora_B = nn.Linear(config.Rank, outFeatures, hasBias: false, device: device, dtype: dtype);
        using (no_grad())
        {
            nn.init.kaiming_uniform_(lora_A.weight, a: Math.Sqrt(5));
            nn.init.zeros_(lora_B.weight);
        }
        dropout = config.Dropout;
        Scaling = config.Scaling;
        scaling = Scaling.ToScalar();
        RegisterComponents();
    }

    public override Tensor Delta(Tensor x, bool training)
    {
        var input = dropout > 0 && training ? nn.functional.dropout(x, dropout, training) : x;
        return lora_B.call(lora_A.call(input)).mul(scaling);
    }

    public override string? WhyNotMergeable => null;

    public Tensor DeltaWeight() => lora_B.weight.matmul(lora_A.weight).mul(scaling);
}
