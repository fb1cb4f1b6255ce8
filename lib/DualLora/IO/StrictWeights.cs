using static TorchSharp.torch;

namespace DualLora.IO;

/// <summary>
/// Copies a checkpoint's tensors into named tensors (a module's parameters and buffers), strictly: every target key
/// must be in the checkpoint with the same shape, and every checkpoint key must be used (or be one the
/// caller names as ignorable). All faults are listed together and nothing is copied unless all is well.
/// Tensors are converted to each parameter's dtype and device (an F16 or BF16 file into an F32 model, say).
/// </summary>
public static class StrictWeights
{
    /// <param name="targets">The tensors to fill, by key (a module's state, an adapter's parameters).</param>
    /// <param name="checkpoint">The file(s) to read.</param>
    /// <param name="fileKeyOf">The checkpoint key holding each target key.</param>
    /// <param name="ignorable">Checkpoint keys that may stay unused (e.g. the rotary inv_freq buffers of older LLaMA files).</param>
    /// <param name="optional">Target keys that may be absent from the file and are then left as they are (e.g. a tied lm_head).</param>
    public static void Load(IEnumerable<(string Key, Tensor Target)> targets, SafetensorsCheckpoint checkpoint, Func<string, string> fileKeyOf,
        Func<string, bool>? ignorable = null, Func<string, bool>? optional = null)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        var missing = new List<string>();
        var misshapen = new List<string>();
        var plan = new List<(Tensor Target, string FileKey)>();
        foreach (var (key, target) in targets)
        {
            string fileKey = fileKeyOf(key);
            if (!checkpoint.Contains(fileKey))
            {
                if (optional?.Invoke(key) != true) missing.Add(fileKey);
                continue;
            }
            used.Add(fileKey);
            var shape = checkpoint.Entry(fileKey).Shape;
            if (!shape.SequenceEqual(target.shape))
                misshapen.Add($"{fileKey} is [{string.Join(", ", shape)}] in the file, [{string.Join(", ", target.shape)}] in the model");
            else
                plan.Add((target, fileKey));
        }
        var unexpected = checkpoint.Names.Where(n => !used.Contains(n) && ignorable?.Invoke(n) != true).ToList();
        if (missing.Count + unexpected.Count + misshapen.Count > 0)
            throw new InvalidFileException(checkpoint.Source, "does not fit the model:" +
                (missing.Count > 0 ? $"\n  missing keys: {string.Join(", ", missing)}" : "") +
                (unexpected.Count > 0 ? $"\n  unexpected keys: {string.Join(", ", unexpected)}" : "") +
                (misshapen.Count > 0 ? $"\n  shape mismatches: {string.Join("; ", misshapen)}" : ""));

        using var _ = no_grad();
        foreach (var (target, fileKey) in plan)
        {
            using var stored = checkpoint.ReadTensor(fileKey);
            target.copy_(stored);
        }
    }

    /// <summary>The same for a module's parameters and buffers (its state_dict).</summary>
    public static void Load(nn.Module module, SafetensorsCheckpoint checkpoint, Func<string, string> fileKeyOf,
        Func<string, bool>? ignorable = null, Func<string, bool>? optional = null) =>
        Load(module.state_dict().Select(kv => (kv.Key, kv.Value)), checkpoint, fileKeyOf, ignorable, optional);
}
