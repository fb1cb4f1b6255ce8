using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;

namespace DualLora.IO;

/// <summary>
/// The weights of a model as Hugging Face stores them: one <c>model.safetensors</c>, or shards named in
/// <c>model.safetensors.index.json</c> (<c>{"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}</c>).
/// Shards are opened (memory-mapped) when the checkpoint opens and validated against the index.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    readonly Dictionary<string, SafetensorsFile> owner;
    readonly List<SafetensorsFile> shards;

    /// <summary>The file the checkpoint was opened from: the single file or the index.</summary>
    public string Source { get; }
    public IReadOnlyList<SafetensorsFile> Shards => shards;

    SafetensorsCheckpoint(string source, List<SafetensorsFile> shards, Dictionary<string, SafetensorsFile> owner)
    {
        Source = source; this.shards = shards; this.owner = owner;
    }

    public IEnumerable<string> Names => shards.SelectMany(s => s.Names);
    public bool Contains(string name) => owner.ContainsKey(name);
    public SafetensorsEntry Entry(string name) => File(name)[name];
    public torch.Tensor ReadTensor(string name, torch.Device? device = null) => File(name).ReadTensor(name, device);

    SafetensorsFile File(string name) => owner.TryGetValue(name, out var file) ? file
        : throw new KeyNotFoundException($"{Source}: no tensor named '{name}'.");

    /// <summary>Opens a .safetensors file, an index .json, or a folder holding either (the index wins).</summary>
    public static SafetensorsCheckpoint Open(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            string index = Path.Combine(full, IndexFileName), single = Path.Combine(full, SingleFileName);
            full = System.IO.File.Exists(index) ? index : System.IO.File.Exists(single) ? single
                : throw new FileNotFoundException($"{full}: holds neither {IndexFileName} nor {SingleFileName}.");
        }
        return full.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? OpenIndex(full) : OpenSingle(full);
    }

    static SafetensorsCheckpoint OpenSingle(string file)
    {
        var shard = SafetensorsFile.Open(file);
        return new SafetensorsCheckpoint(file, [shard], shard.Names.ToDictionary(n => n, _ => shard));
    }

    static SafetensorsCheckpoint OpenIndex(string index)
    {
        var weightMap = ReadWeightMap(index);
        string folder = Path.GetDirectoryName(index)!;
        var shards = new List<SafetensorsFile>();
        try
        {
            var byFile = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (string shardName in weightMap.Values.Distinct().Order(StringComparer.Ordinal))
            {
                string shardPath = Path.Combine(folder, shardName);
                if (!System.IO.File.Exists(shardPath))
                    throw new InvalidFileException(index, $"shard '{shardName}' named in weight_map does not exist (a missing file, or a symbolic link to one).");
                var shard = SafetensorsFile.Open(shardPath);
                shards.Add(shard);
                byFile[shardName] = shard;
            }
            var owner = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var (tensor, shardName) in weightMap)
            {
                var shard = byFile[shardName];
                if (!shard.Contains(tensor))
                    throw new InvalidFileException(index, $"weight_map puts tensor '{tensor}' in '{shardName}', which does not hold it.");
                owner[tensor] = shard;
            }
            foreach (var (shardName, shard) in byFile)
            {
                var unlisted = shard.Names.Where(n => !weightMap.ContainsKey(n)).ToList();
                if (unlisted.Count > 0)
                    throw new InvalidFileException(index, $"shard '{shardName}' holds tensors missing from weight_map: {string.Join(", ", unlisted)}.");
            }
            return new SafetensorsCheckpoint(index, shards, owner);
        }
        catch
        {
            foreach (var shard in shards) shard.Dispose();
            throw;
        }
    }

    static Dictionary<string, string> ReadWeightMap(string index)
    {
        // Strict JSON: a tensor named twice in weight_map is an error, not the last one winning.
        if (StrictJson.ReadFile(index) is not JsonObject root || root["weight_map"] is not JsonObject map)
            throw new InvalidFileException(index, "the index must be an object with a 'weight_map' object.");
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (tensor, value) in map)
        {
            string? shard = value is JsonValue text && text.TryGetValue(out string? name) ? name : null;
            if (string.IsNullOrEmpty(shard) || shard.Contains('/') || shard.Contains('\\') || shard is "." or "..")
                throw new InvalidFileException(index, $"weight_map entry '{tensor}' must name a shard file in the same folder.");
            weightMap[tensor] = shard;
        }
        return weightMap;
    }

    /// <summary>
    /// Writes tensors as shards of at most <paramref name="maxShardBytes"/> data bytes each (a larger tensor
    /// gets a shard of its own), named <c>model-0000i-of-0000n.safetensors</c>, and the index beside them.
    /// </summary>
    public static void WriteSharded(string folder, IReadOnlyList<KeyValuePair<string, torch.Tensor>> tensors, long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var groups = new List<List<KeyValuePair<string, torch.Tensor>>> { new() };
        long filled = 0, total = 0;
        foreach (var pair in tensors)
        {
            long bytes = pair.Value.NumberOfElements * pair.Value.ElementSize;
            if (groups[^1].Count > 0 && filled + bytes > maxShardBytes) { groups.Add([]); filled = 0; }
            groups[^1].Add(pair);
            filled += bytes;
            total += bytes;
        }
        Directory.CreateDirectory(folder);
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < groups.Count; i++)
        {
            string shardName = $"model-{i + 1:D5}-of-{groups.Count:D5}.safetensors";
            SafetensorsWriter.Write(Path.Combine(folder, shardName), groups[i], metadata);
            foreach (var pair in groups[i]) weightMap[pair.Key] = shardName;
        }
        var index = new { metadata = new { total_size = total }, weight_map = weightMap };
        AtomicFile.WriteAllText(Path.Combine(folder, IndexFileName), JsonSerializer.Serialize(index, new JsonSerializerOptions { WriteIndented = true }));
    }

    public void Dispose()
    {
        foreach (var shard in shards) shard.Dispose();
    }
}
