using static TorchSharp.torch;

namespace DualLora.Language;

/// <summary>
/// The keys and values of every layer for the tokens seen so far, so generation feeds one new token at a
/// time instead of the whole sequence. Each entry is (batch, kv_heads, length, head_dim).
/// </summary>
public sealed class KeyValueCache : IDisposable
{
    readonly Tensor?[] keys, values;

    public KeyValueCache(int layers)
    {
        keys = new Tensor?[layers];
        values = new Tensor?[layers];
    }

    /// <summary>How many positions are cached.</summary>
    public long Length => keys[0]?.shape[2] ?? 0;

    /// <summary>Appends this step's keys and values for <paramref name="layer"/> and returns everything cached for it.</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor newKeys, Tensor newValues)
    {
        var k = keys[layer] is { } oldK ? cat([oldK, newKeys], 2) : newKeys.alias();
        var v = values[layer] is { } oldV ? cat([oldV, newValues], 2) : newValues.alias();
        keys[layer]?.Dispose();
        values[layer]?.Dispose();
        // The cache outlives the step's dispose scope.
        keys[layer] = k.DetachFromDisposeScope();
        values[layer] = v.DetachFromDisposeScope();
        return (k, v);
    }

    public void Dispose()
    {
        foreach (var tensor in keys.Concat(values)) tensor?.Dispose();
    }
}
