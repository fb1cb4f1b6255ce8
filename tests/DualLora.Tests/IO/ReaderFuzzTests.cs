using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DualLora.Adapters;
using DualLora.Cli.Notebooks;
using DualLora.Data;
using DualLora.IO;
using DualLora.Language;
using DualLora.Multimodal;
using DualLora.Tests.Adapters;
using DualLora.Training;
using DualLora.Vision;
using SkiaSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DualLora.Tests.IO;

/// <summary>
/// Seeded corruptions of files the library wrote itself: safetensors files, sharded checkpoints, PEFT adapter folders,
/// llava-hf model folders, notebooks, LLaVA instruction data with its images, and training checkpoints. Every case must end in a successful read of a file that is still valid, or
/// in the library's error for bad files (<see cref="InvalidFileException"/>; for a file that is not there,
/// <see cref="FileNotFoundException"/>) whose message names the case's folder, within a second and without
/// allocating what the corrupted file asks for. Whether a mutated file is still valid is known from the mutation,
/// or, for random bytes, decided by <see cref="ReferenceSafetensors"/>.
/// </summary>
// Resuming a checkpoint sets LibTorch's process-wide random state, which other tests of this collection compare bit for bit.
[Collection(ProcessStateCollection.Name)]
public class ReaderFuzzTests(ITestOutputHelper output)
{
    const int Seed = 20261203;
    static readonly TimeSpan Limit = TimeSpan.FromSeconds(1);
    const long MemoryLimit = 256L << 20;

    /// <summary>A mutated input: its folder (every error must name it), the path the reader opens, and whether it is valid (null: ask the oracle).</summary>
    sealed record FuzzCase(string Mutation, string Folder, string Path, bool? Valid);

    sealed class Family(string name, ITestOutputHelper output)
    {
        readonly List<string> failures = [];
        readonly Dictionary<string, int> outcomes = [];

        /// <summary>Reads the case and records what happened; <paramref name="oracle"/> decides validity when the case does not say.</summary>
        public void Run(FuzzCase c, Action<string> read, Func<bool>? oracle = null)
        {
            long peak = Process.GetCurrentProcess().PeakWorkingSet64;
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            var clock = Stopwatch.StartNew();
            Exception? error = null;
            try
            {
                using var scope = NewDisposeScope();
                read(c.Path);
            }
            catch (Exception e)
            {
                error = e;
            }
            clock.Stop();
            long managed = GC.GetAllocatedBytesForCurrentThread() - allocated;
            long grown = Process.GetCurrentProcess().PeakWorkingSet64 - peak;
            bool valid = c.Valid ?? oracle?.Invoke() ?? throw new InvalidOperationException($"{c.Mutation}: no validity and no oracle");
            string? failure = (error, valid) switch
            {
                (null, true) => null,
                (null, false) => "an invalid input was accepted",
                (InvalidFileException or FileNotFoundException, false) when error.Message.Contains(c.Folder, StringComparison.Ordinal) => null,
                (InvalidFileException or FileNotFoundException, false) => $"the error does not name the file: {error.Message}",
                (InvalidFileException or FileNotFoundException, true) => $"a valid input was rejected: {error.Message}",
                _ => $"{error.GetType().Name}: {error.Message}",
            };
            if (failure is null && clock.Elapsed > Limit) failure = $"took {clock.Elapsed.TotalSeconds:F1} s";
            if (failure is null && Math.Max(managed, grown) > MemoryLimit) failure = $"allocated {Math.Max(managed, grown) >> 20} MB";
            string outcome = failure is not null ? "failed" : error is null ? "read" : "clear error";
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            if (failure is not null) failures.Add($"{name} / {c.Mutation}: {failure.Split('\n')[0]}");
        }

        public int Cases => outcomes.Values.Sum();
        public IReadOnlyList<string> Failures => failures;

        public void Report() => output.WriteLine($"{name}: {Cases} cases; " + string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Value} {o.Key}")));
    }

    static readonly SafetensorsTensor[] Tensors =
    [
        new("embed.weight", SafetensorsDType.F32, [3, 4], Bytes(48, 1)),
        new("layers.0.bias", SafetensorsDType.BF16, [4], Bytes(8, 2)),
        new("position_ids", SafetensorsDType.I64, [2, 1], Bytes(16, 3)),
        new("empty", SafetensorsDType.F16, [0, 3], Array.Empty<byte>()),
    ];

    static byte[] Bytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        // Finite values only: no NaN patterns matter to a reader, but keep the tensors ordinary.
        for (int i = 3; i < count; i += 4) bytes[i] &= 0x3F;
        return bytes;
    }

    static void ReadAll(string path)
    {
        using var file = SafetensorsFile.Open(path);
        foreach (string name in file.Names) file.ReadTensor(name).Dispose();
    }

    [Fact]
    public void Corrupted_files_are_read_or_refused_clearly_never_crashing_hanging_or_allocating_what_they_claim()
    {
        var random = new Random(Seed);
        using var temp = new TempFolder();
        var families = new[]
        {
            Safetensors(random, temp.Path, 450),
            Sharded(random, temp.Path, 150),
            Adapters(random, temp.Path, 200),
            ModelFolders(random, temp.Path, 100),
            Notebooks(random, temp.Path, 150),
            InstructionData(random, temp.Path, 150),
            Images(random, temp.Path, 100),
            Checkpoints(random, temp.Path, 100),
        };
        foreach (var family in families) family.Report();
        var failures = families.SelectMany(f => f.Failures).ToList();
        // Failures grouped by mutation and kind of fault (paths and numbers left out), most frequent first.
        foreach (var group in failures.GroupBy(f => System.Text.RegularExpressions.Regex.Replace(f, @"(/[^\s:']+)+|\d+", "#")).OrderByDescending(g => g.Count()))
            output.WriteLine($"{group.Count(),4} x {group.First()}");
        Assert.True(families.Sum(f => f.Cases) >= 1000, $"{families.Sum(f => f.Cases)} cases");
        Assert.True(failures.Count == 0, $"{failures.Count} of {families.Sum(f => f.Cases)} cases failed, e.g.\n{string.Join("\n", failures.Take(20))}");
    }

    static T Pick<T>(Random random, params T[] choices) => choices[random.Next(choices.Length)];

    static string CaseFolder(string root, string family, int index)
    {
        string folder = Path.Combine(root, family, $"case-{index:D4}");
        Directory.CreateDirectory(folder);
        return folder;
    }

    // ---- safetensors ----

    Family Safetensors(Random random, string root, int count)
    {
        var family = new Family("safetensors", output);
        string pristine = Path.Combine(root, "pristine.safetensors");
        SafetensorsWriter.Write(pristine, Tensors, new Dictionary<string, string> { ["format"] = "pt" });
        byte[] original = File.ReadAllBytes(pristine);
        for (int i = 0; i < count; i++)
        {
            string folder = CaseFolder(root, "safetensors", i);
            string path = Path.Combine(folder, "model.safetensors");
            var (mutation, bytes, valid) = MutateSafetensors(random, original);
            if (mutation.StartsWith("symlink", StringComparison.Ordinal))
            {
                string target = Path.Combine(folder, "blobs", "0123abcd");
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                if (mutation != "symlink to a missing blob") File.WriteAllBytes(target, original);
                File.CreateSymbolicLink(path, Path.Combine("blobs", "0123abcd"));
            }
            else File.WriteAllBytes(path, bytes);
            family.Run(new FuzzCase(mutation, folder, path, valid), ReadAll, () => ReferenceSafetensors.Fault(bytes) is null);
        }
        return family;
    }

    /// <summary>One random corruption of a safetensors file: its name, the bytes, and whether they are valid (null: the oracle decides).</summary>
    static (string Mutation, byte[] Bytes, bool? Valid) MutateSafetensors(Random random, byte[] original)
    {
        var (header, data) = ReferenceSafetensors.Split(original);
        var entries = Entries(header);
        var tensors = entries.Where(e => e.Name != "__metadata__").ToList();
        byte[] Rebuild(IEnumerable<(string Name, string Raw)> items, byte[]? newData = null, string padding = "") =>
            ReferenceSafetensors.Assemble("{" + string.Join(",", items.Select(e => $"{JsonSerializer.Serialize(e.Name)}:{e.Raw}")) + "}" + padding, newData ?? data);
        List<(string Name, string Raw)> With(string name, string raw) =>
            entries.Any(e => e.Name == name) ? entries.Select(e => e.Name == name ? (name, raw) : e).ToList() : [(name, raw), .. entries];
        // The first tensor's entry edited as JSON.
        var first = tensors[0];
        string Edited(Action<JsonObject> edit)
        {
            var json = JsonNode.Parse(first.Raw)!.AsObject();
            edit(json);
            return json.ToJsonString();
        }
        string dtype = JsonNode.Parse(first.Raw)!["dtype"]!.GetValue<string>();
        int headerEnd = 8 + Encoding.UTF8.GetByteCount(header);

        switch (random.Next(26))
        {
            case 0 or 1 or 2:
            {
                var bytes = (byte[])original.Clone();
                for (int k = random.Next(1, 4); k > 0; k--) bytes[random.Next(8, headerEnd)] = (byte)random.Next(256);
                return ("random bytes in the header", bytes, null);
            }
            case 3:
            {
                var bytes = (byte[])original.Clone();
                bytes[random.Next(headerEnd, bytes.Length)] ^= (byte)random.Next(1, 256);
                return ("a random byte in the data", bytes, true);
            }
            case 4: return ("truncated", original[..random.Next(original.Length)], null);
            case 5:
            {
                var extra = new byte[random.Next(1, 17)];
                random.NextBytes(extra);
                return ("bytes after the last tensor", [.. original, .. extra], false);
            }
            case 6:
            {
                var bytes = (byte[])original.Clone();
                ulong[] lengths = [(ulong)random.Next(0, headerEnd), (ulong)(headerEnd - 8 + 1), 1UL << 40, ulong.MaxValue, 100_000_001];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes, Pick(random, lengths));
                return ("a wrong header length", bytes, null);
            }
            case 7: return ("a tensor twice", Rebuild([.. entries, tensors[random.Next(tensors.Count)]]), false);
            case 8: return ("a key twice inside an entry", Rebuild(With(first.Name, first.Raw.Replace($"\"dtype\":\"{dtype}\"", $"\"dtype\":\"{dtype}\",\"dtype\":\"{dtype}\""))), false);
            case 9: return ("a key twice in __metadata__", Rebuild(With("__metadata__", "{\"format\":\"pt\",\"format\":\"np\"}")), false);
            case 10: return ("__metadata__ null", Rebuild(With("__metadata__", "null")), true);
            case 11: return ("a metadata value that is not a string", Rebuild(With("__metadata__", "{\"format\":1}")), false);
            case 12:
                return ("a shape whose element count overflows 64 bits",
                    Rebuild(With(first.Name, Edited(e => e["shape"] = new JsonArray(4294967296L, 4294967296L, 4294967296L)))), false);
            case 13:
            {
                // The last tensor with data moved 8 bytes on (and what follows it), leaving a gap before it.
                var offsets = tensors.Select(t => (t.Name, Offsets: JsonNode.Parse(t.Raw)!["data_offsets"]!.AsArray().Select(o => o!.GetValue<long>()).ToArray())).ToList();
                long at = offsets.Where(o => o.Offsets[1] > o.Offsets[0]).Max(o => o.Offsets[0]);
                byte[] moved = [.. data.AsSpan(0, (int)at), .. new byte[8], .. data.AsSpan((int)at)];
                var shifted = entries.Select(e =>
                {
                    if (e.Name == "__metadata__") return e;
                    var json = JsonNode.Parse(e.Raw)!.AsObject();
                    long[] o = json["data_offsets"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray();
                    if (o[0] >= at) json["data_offsets"] = new JsonArray(o[0] + 8, o[1] + 8);
                    return (e.Name, json.ToJsonString());
                });
                return ("a gap between tensors", Rebuild(shifted, moved), false);
            }
            case 14: return ("an empty header over data", ReferenceSafetensors.Assemble("{}", data), data.Length == 0);
            case 15:
            {
                byte[] head = Encoding.UTF8.GetBytes("{" + string.Join(",", entries.Select(e => $"{JsonSerializer.Serialize(e.Name)}:{e.Raw}")) + "}");
                int at = 2 + random.Next(3);
                head = [.. head[..at], 0xFF, .. head[at..]];
                return ("invalid UTF-8 in a name", ReferenceSafetensors.Assemble(head, data), false);
            }
            case 16:
            {
                string renamed = JsonSerializer.Serialize(first.Name);
                string text = ReferenceSafetensors.Split(Rebuild(entries)).Header.Replace(renamed + ":", renamed.Insert(2, "\\ud800") + ":");
                return ("a lone surrogate escape in a name", ReferenceSafetensors.Assemble(text, data), false);
            }
            case 17: return ("deep nesting", Rebuild(With("__metadata__", "{\"deep\":" + new string('[', 300) + new string(']', 300) + "}")), false);
            case 18: return ("an unknown dtype", Rebuild(With(first.Name, Edited(e => e["dtype"] = "F33"))), false);
            case 19:
            {
                var sameSize = new Dictionary<string, string> { ["F32"] = "I32", ["I32"] = "F32", ["F16"] = "BF16", ["BF16"] = "F16", ["I64"] = "F64", ["F64"] = "I64" };
                return ("a dtype of the same size", Rebuild(With(first.Name, Edited(e => e["dtype"] = sameSize[dtype]))), true);
            }
            case 20:
            {
                var otherSize = new Dictionary<string, string> { ["F32"] = "F16", ["I32"] = "I64", ["F16"] = "F32", ["BF16"] = "F32", ["I64"] = "I32", ["F64"] = "F32" };
                bool empty = JsonNode.Parse(first.Raw)!["shape"]!.AsArray().Any(d => d!.GetValue<long>() == 0);
                return ("a dtype of another size", Rebuild(With(first.Name, Edited(e => e["dtype"] = otherSize[dtype]))), empty);
            }
            case 21:
            {
                string offsets = Pick(random, "[0,\"48\"]", "[-48,0]", "[0.5,48]", "[0]", "[0,48,96]", "null", "[0,1]");
                return ($"data_offsets {offsets}", Rebuild(With(first.Name, Edited(e => e["data_offsets"] = JsonNode.Parse(offsets)))), null);
            }
            case 22: return ("entries in another order", Rebuild(entries.OrderBy(_ => random.Next())), true);
            case 23: return ("spaces after the header", Rebuild(entries, padding: new string(' ', random.Next(1, 9))), true);
            case 24: return ("a header that starts with a space", ReferenceSafetensors.Assemble(" " + header.TrimEnd(), data), false);
            default:
                string link = Pick(random, "symlink to a blob (the hub cache)", "symlink to a missing blob");
                return (link, original, link != "symlink to a missing blob");
        }
    }

    static List<(string Name, string Raw)> Entries(string header)
    {
        using var document = JsonDocument.Parse(header.TrimEnd());
        return document.RootElement.EnumerateObject().Select(p => (p.Name, p.Value.GetRawText())).ToList();
    }

    // ---- sharded checkpoints ----

    Family Sharded(Random random, string root, int count)
    {
        var family = new Family("sharded", output);
        string pristine = Path.Combine(root, "pristine-sharded");
        using (var scope = NewDisposeScope())
        {
            var tensors = Enumerable.Range(0, 6).Select(i => KeyValuePair.Create($"model.layers.{i}.weight", randn(4, 4))).ToList();
            SafetensorsCheckpoint.WriteSharded(pristine, tensors, maxShardBytes: 128);
        }
        string[] shardNames = Directory.GetFiles(pristine, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        string index = File.ReadAllText(Path.Combine(pristine, SafetensorsCheckpoint.IndexFileName));
        for (int i = 0; i < count; i++)
        {
            string folder = CaseFolder(root, "sharded", i);
            foreach (string shard in shardNames) File.Copy(Path.Combine(pristine, shard), Path.Combine(folder, shard));
            string indexPath = Path.Combine(folder, SafetensorsCheckpoint.IndexFileName);
            var weightMap = JsonNode.Parse(index)!["weight_map"]!.AsObject().Select(p => (p.Key, Shard: p.Value!.GetValue<string>())).ToList();
            string Map(IEnumerable<(string Key, string Shard)> items, string metadata = "{\"total_size\": 384}") =>
                "{\"metadata\": " + metadata + ", \"weight_map\": {" + string.Join(", ", items.Select(p => $"{JsonSerializer.Serialize(p.Key)}: {JsonSerializer.Serialize(p.Shard)}")) + "}}";
            string mutation;
            bool? valid;
            byte[]? corruptShard = null, originalShard = null;
            byte[] indexBytes;
            switch (random.Next(16))
            {
                case 0: (mutation, valid, indexBytes) = ("no weight_map", false, Utf8("{\"metadata\": {}}")); break;
                case 1: (mutation, valid, indexBytes) = ("weight_map a list", false, Utf8("{\"weight_map\": [\"model-00001-of-00003.safetensors\"]}")); break;
                case 2: (mutation, valid, indexBytes) = ("a shard named by a number", false, Utf8(Map(weightMap).Replace($"\"{weightMap[0].Shard}\"", "1"))); break;
                case 3: (mutation, valid, indexBytes) = ("a weight_map key twice", false, Utf8(Map([.. weightMap, weightMap[random.Next(weightMap.Count)]]))); break;
                case 4: (mutation, valid, indexBytes) = ("a shard outside the folder", false, Utf8(Map(weightMap.Select((p, k) => k == 0 ? (p.Key, "../" + p.Shard) : p)))); break;
                case 5:
                    (mutation, valid, indexBytes) = ("a missing shard", false, Utf8(index));
                    File.Delete(Path.Combine(folder, Pick(random, shardNames)));
                    break;
                case 6: (mutation, valid, indexBytes) = ("a tensor put in the wrong shard", false, Utf8(Map(weightMap.Select((p, k) => k == 0 ? (p.Key, weightMap[^1].Shard) : p)))); break;
                case 7: (mutation, valid, indexBytes) = ("a tensor left out of weight_map", false, Utf8(Map(weightMap.Skip(1)))); break;
                case 8: (mutation, valid, indexBytes) = ("a tensor no shard holds", false, Utf8(Map([.. weightMap, ("model.extra", weightMap[0].Shard)]))); break;
                case 9:
                {
                    byte[] text = Utf8(Map(weightMap));
                    int at = random.Next(20, text.Length - 5);
                    (mutation, valid, indexBytes) = ("invalid UTF-8 in the index", false, [.. text[..at], 0xC3, 0x28, .. text[at..]]);
                    break;
                }
                case 10: (mutation, valid, indexBytes) = ("a lone surrogate escape in a key", false, Utf8(Map(weightMap).Replace("model.layers.0.weight", "model.layers.0\\ud800.weight"))); break;
                case 11: (mutation, valid, indexBytes) = ("the index truncated", false, Utf8(index)[..random.Next(index.Length - 1)]); break;
                case 12: (mutation, valid, indexBytes) = ("metadata null", true, Utf8(Map(weightMap, "null"))); break;
                case 13: (mutation, valid, indexBytes) = ("keys in another order", true, Utf8(Map(weightMap.OrderBy(_ => random.Next())))); break;
                case 14:
                {
                    (mutation, valid, indexBytes) = ("shards as hub-cache symlinks", true, Utf8(index));
                    Directory.CreateDirectory(Path.Combine(folder, "blobs"));
                    foreach (string shard in shardNames)
                    {
                        File.Move(Path.Combine(folder, shard), Path.Combine(folder, "blobs", shard + ".blob"));
                        File.CreateSymbolicLink(Path.Combine(folder, shard), Path.Combine("blobs", shard + ".blob"));
                    }
                    break;
                }
                default:
                {
                    string shard = Path.Combine(folder, Pick(random, shardNames));
                    var (name, bytes, shardValid) = MutateSafetensors(random, File.ReadAllBytes(shard));
                    if (name.StartsWith("symlink", StringComparison.Ordinal)) (name, bytes, shardValid) = ("truncated", bytes[..random.Next(bytes.Length)], null);
                    originalShard = File.ReadAllBytes(shard);
                    File.WriteAllBytes(shard, bytes);
                    corruptShard = bytes;
                    (mutation, valid, indexBytes) = ($"a shard: {name}", shardValid, Utf8(index));
                    break;
                }
            }
            File.WriteAllBytes(indexPath, indexBytes);
            byte[]? shardBytes = corruptShard, shardBefore = originalShard;
            family.Run(new FuzzCase(mutation, folder, folder, valid), path =>
            {
                using var checkpoint = SafetensorsCheckpoint.Open(path);
                foreach (string name in checkpoint.Names) checkpoint.ReadTensor(name).Dispose();
            }, () => SameTensors(shardBytes!, shardBefore!));
        }
        return family;
    }

    static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>Whether <paramref name="bytes"/> are a valid safetensors file holding the tensors of <paramref name="original"/> by name and shape (their values may differ).</summary>
    static bool SameTensors(byte[] bytes, byte[] original)
    {
        if (ReferenceSafetensors.Fault(bytes) is not null) return false;
        static string Layout(byte[] file) => string.Join(";", Entries(ReferenceSafetensors.Split(file).Header).Where(e => e.Name != "__metadata__")
            .Select(e => $"{e.Name}={JsonNode.Parse(e.Raw)!["shape"]!.ToJsonString()}").Order(StringComparer.Ordinal));
        return Layout(bytes) == Layout(original);
    }

    // ---- PEFT adapter folders ----

    Family Adapters(Random random, string root, int count)
    {
        var family = new Family("adapters", output);
        string pristine = Path.Combine(root, "pristine-adapter");
        using (var scope = NewDisposeScope())
            AdapterFiles.Save(AdapterInjection.Inject(new TinyModel(seed: 3), new DualLoraConfig(Rank: 2) { ModulesToSave = ["mm_projector"] }), pristine);
        string config = File.ReadAllText(Path.Combine(pristine, AdapterFiles.ConfigFile));
        byte[] weights = File.ReadAllBytes(Path.Combine(pristine, AdapterFiles.WeightsFile));
        for (int i = 0; i < count; i++)
        {
            string folder = CaseFolder(root, "adapters", i);
            string configPath = Path.Combine(folder, AdapterFiles.ConfigFile), weightsPath = Path.Combine(folder, AdapterFiles.WeightsFile);
            byte[] configBytes = Utf8(config), weightBytes = weights;
            string Set(string key, string rawValue)
            {
                var json = JsonNode.Parse(config)!.AsObject();
                json[key] = JsonNode.Parse(rawValue);
                return json.ToJsonString();
            }
            string mutation;
            bool? valid;
            switch (random.Next(14))
            {
                case 0:
                {
                    string r = Pick(random, "10000000", "0", "-1", "\"2\"", "2.5", "3", "1e300");
                    (mutation, valid, configBytes) = ($"r = {r}", false, Utf8(Set("r", r)));
                    break;
                }
                case 1:
                {
                    string alpha = Pick(random, "\"4\"", "null", "true", "[4]");
                    (mutation, valid, configBytes) = ($"lora_alpha = {alpha}", alpha == "null", Utf8(Set("lora_alpha", alpha)));
                    break;
                }
                case 2:
                {
                    string target = Pick(random, "5", "[null]", "[5]", "\"(\"", "[\"no_such_module\"]", "[]", "{}");
                    (mutation, valid, configBytes) = ($"target_modules = {target}", false, Utf8(Set("target_modules", target)));
                    break;
                }
                case 3:
                {
                    string save = Pick(random, "[123]", "\"mm_projector\"", "[\"no_such_module\"]", "[null]");
                    (mutation, valid, configBytes) = ($"modules_to_save = {save}", false, Utf8(Set("modules_to_save", save)));
                    break;
                }
                case 4: (mutation, valid, configBytes) = ("peft_type twice", false, Utf8(config.Replace("\"peft_type\": \"DUAL_LORA\"", "\"peft_type\": \"DUAL_LORA\", \"peft_type\": \"LORA\""))); break;
                case 5: (mutation, valid, configBytes) = ("an unknown peft_type", false, Utf8(Set("peft_type", "\"PROMPT_TUNING\""))); break;
                case 6:
                {
                    byte[] text = Utf8(config);
                    int at = config.IndexOf("DUAL_LORA", StringComparison.Ordinal) + 2;
                    (mutation, valid, configBytes) = ("invalid UTF-8 in the config", false, [.. text[..at], 0xFF, .. text[at..]]);
                    break;
                }
                case 7: (mutation, valid, configBytes) = ("a lone surrogate escape in the config", false, Utf8(config.Replace("\"DUAL_LORA\"", "\"DUAL_LORA\\udc00\""))); break;
                case 8: (mutation, valid, configBytes) = ("the config truncated", false, Utf8(config)[..random.Next(config.Length - 1)]); break;
                case 9:
                {
                    // The weights of another rank: every lora_A, lora_B, lora_T and LayerNorm shape disagrees with the config.
                    string other = Path.Combine(folder, "other");
                    using (var scope = NewDisposeScope())
                        AdapterFiles.Save(AdapterInjection.Inject(new TinyModel(seed: 3), new DualLoraConfig(Rank: 3) { ModulesToSave = ["mm_projector"] }), other);
                    (mutation, valid, weightBytes) = ("weights of another rank", false, File.ReadAllBytes(Path.Combine(other, AdapterFiles.WeightsFile)));
                    Directory.Delete(other, recursive: true);
                    break;
                }
                case 10:
                {
                    using var file = SafetensorsFile.Open(Path.Combine(pristine, AdapterFiles.WeightsFile));
                    var names = file.Names.ToList();
                    string dropped = names[random.Next(names.Count)];
                    var kept = names.Where(n => n != dropped).Select(n => new SafetensorsTensor(n, file[n].DType, file[n].Shape, file.ReadBytes(n))).ToList();
                    string rewritten = Path.Combine(folder, "rewritten.safetensors");
                    SafetensorsWriter.Write(rewritten, kept);
                    (mutation, valid, weightBytes) = ("a weight missing", false, File.ReadAllBytes(rewritten));
                    File.Delete(rewritten);
                    break;
                }
                case 11:
                {
                    var (name, bytes, weightValid) = MutateSafetensors(random, weights);
                    if (name.StartsWith("symlink", StringComparison.Ordinal)) (name, bytes, weightValid) = ("bytes after the last tensor", [.. weights, 0], false);
                    // A valid file whose tensors are other ones than the adapter's is not a valid adapter.
                    if (weightValid == true && !SameTensors(bytes, weights)) weightValid = false;
                    (mutation, valid, weightBytes) = ($"the weights: {name}", weightValid, bytes);
                    break;
                }
                case 12: (mutation, valid) = ("no config file", false); configBytes = []; break;
                default: (mutation, valid, configBytes) = ("fields in another order", true, Utf8(new JsonObject(JsonNode.Parse(config)!.AsObject().OrderBy(_ => random.Next())
                    .Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))).ToJsonString())); break;
            }
            if (configBytes.Length > 0 || mutation != "no config file") File.WriteAllBytes(configPath, configBytes);
            File.WriteAllBytes(weightsPath, weightBytes);
            byte[] oracleBytes = weightBytes;
            family.Run(new FuzzCase(mutation, folder, folder, valid), path => AdapterFiles.Load(new TinyModel(seed: 3), path),
                () => SameTensors(oracleBytes, weights));
        }
        return family;
    }

    // ---- llava-hf model folders ----

    static readonly ClipVisionConfig Vision = new(HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 2, ImageSize: 8, PatchSize: 4,
        NumChannels: 1, LayerNormEps: 1e-5, HiddenAct: "gelu");
    static readonly LlamaConfig Text = new(VocabSize: 40, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 2,
        RmsNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64);

    Family ModelFolders(Random random, string root, int count)
    {
        var family = new Family("llava-hf folders", output);
        string pristine = Path.Combine(root, "pristine-llava");
        using (var scope = NewDisposeScope())
            LlavaHfWriter.Save(new LlavaModel(new ClipVisionModel(Vision), new LlamaForCausalLM(Text), null), pristine);
        string config = File.ReadAllText(Path.Combine(pristine, "config.json"));
        string[] files = Directory.GetFiles(pristine).Select(Path.GetFileName).ToArray()!;
        for (int i = 0; i < count; i++)
        {
            string folder = CaseFolder(root, "llava", i);
            foreach (string file in files) File.Copy(Path.Combine(pristine, file), Path.Combine(folder, file));
            string Set(string section, string key, string rawValue)
            {
                var json = JsonNode.Parse(config)!.AsObject();
                var target = section.Length == 0 ? json : json[section]!.AsObject();
                target[key] = JsonNode.Parse(rawValue);
                return json.ToJsonString();
            }
            string mutation;
            bool? valid;
            byte[] configBytes;
            switch (random.Next(9))
            {
                case 0:
                {
                    string size = Pick(random, "4000000", "0", "-3", "\"40\"", "40.5", "41");
                    (mutation, valid, configBytes) = ($"text_config.vocab_size = {size}", false, Utf8(Set("text_config", "vocab_size", size)));
                    break;
                }
                case 1:
                {
                    string size = Pick(random, "100000", "0", "null", "15", "[16]");
                    (mutation, valid, configBytes) = ($"text_config.hidden_size = {size}", false, Utf8(Set("text_config", "hidden_size", size)));
                    break;
                }
                case 2:
                {
                    string size = Pick(random, "3", "1", "2000");
                    (mutation, valid, configBytes) = ($"text_config.num_hidden_layers = {size}", false, Utf8(Set("text_config", "num_hidden_layers", size)));
                    break;
                }
                case 3:
                {
                    string size = Pick(random, "3", "64", "\"2\"");
                    (mutation, valid, configBytes) = ($"vision_config.num_attention_heads = {size}", false, Utf8(Set("vision_config", "num_attention_heads", size)));
                    break;
                }
                case 4:
                {
                    string size = Pick(random, "3000000", "12", "7");
                    (mutation, valid, configBytes) = ($"vision_config.intermediate_size = {size}", false, Utf8(Set("vision_config", "intermediate_size", size)));
                    break;
                }
                case 5: (mutation, valid, configBytes) = ("a key twice", false, Utf8(config.Replace("\"model_type\":", "\"model_type\": \"llava\", \"model_type\":"))); break;
                case 6:
                {
                    byte[] text = Utf8(config);
                    int at = config.IndexOf("llava", StringComparison.Ordinal) + 1;
                    (mutation, valid, configBytes) = ("invalid UTF-8 in the config", false, [.. text[..at], 0xFE, .. text[at..]]);
                    break;
                }
                case 7: (mutation, valid, configBytes) = ("the config truncated", false, Utf8(config)[..random.Next(config.Length - 1)]); break;
                default: (mutation, valid, configBytes) = ("the config re-indented", true, Utf8(JsonNode.Parse(config)!.ToJsonString(new JsonSerializerOptions { WriteIndented = false }))); break;
            }
            File.WriteAllBytes(Path.Combine(folder, "config.json"), configBytes);
            family.Run(new FuzzCase(mutation, folder, folder, valid), path => HuggingFaceModels.LoadLlava(path).Dispose());
        }
        return family;
    }

    // ---- notebooks ----

    Family Notebooks(Random random, string root, int count)
    {
        var family = new Family("notebooks", output);
        string pristine = Site.TestNotebook.Write(root, "pristine", Site.TestNotebook.Markdown("# A notebook"), Site.TestNotebook.Code("1 + 1", Site.TestNotebook.Stdout("2\n")));
        string text = File.ReadAllText(pristine);
        for (int i = 0; i < count; i++)
        {
            string folder = CaseFolder(root, "notebooks", i);
            string path = Path.Combine(folder, "notebook.ipynb");
            string Set(Action<JsonObject> edit)
            {
                var json = JsonNode.Parse(text)!.AsObject();
                edit(json);
                return json.ToJsonString();
            }
            JsonObject Cell(JsonObject json, int index) => json["cells"]![index]!.AsObject();
            var bad = new (string Mutation, Func<string> Make)[]
            {
                ("metadata a number", () => Set(j => j["metadata"] = 5)),
                ("metadata a list", () => Set(j => j["metadata"] = new JsonArray())),
                ("kernelspec.name a number", () => Set(j => j["metadata"]!["kernelspec"]!["name"] = 5)),
                ("kernelspec.name a list", () => Set(j => j["metadata"]!["kernelspec"]!["name"] = new JsonArray(".net-csharp"))),
                ("kernelspec a string", () => Set(j => j["metadata"]!["kernelspec"] = ".net-csharp")),
                ("a cell's kernelName a number", () => Set(j => Cell(j, 1)["metadata"] = new JsonObject { ["polyglot_notebook"] = new JsonObject { ["kernelName"] = 3 } })),
                ("a cell's kernelName a list", () => Set(j => Cell(j, 1)["metadata"] = new JsonObject { ["polyglot_notebook"] = new JsonObject { ["kernelName"] = new JsonArray("csharp") } })),
                ("a cell's metadata a string", () => Set(j => Cell(j, 1)["metadata"] = "x")),
                ("cells an object", () => Set(j => j["cells"] = new JsonObject())),
                ("a cell a number", () => Set(j => j["cells"]![0] = 7)),
                ("cell_type a number", () => Set(j => Cell(j, 0)["cell_type"] = 1)),
                ("source a number", () => Set(j => Cell(j, 1)["source"] = 1)),
                ("nbformat 3", () => Set(j => j["nbformat"] = 3)),
                ("nbformat a string", () => Set(j => j["nbformat"] = "4")),
                ("a key twice", () => text.Replace("\"nbformat\":4", "\"nbformat\":4,\"nbformat\":4")),
                ("a lone surrogate escape", () => text.Replace("# A notebook", "# A \\ud800notebook")),
                ("truncated", () => text[..random.Next(text.Length - 1)]),
            };
            var good = new (string Mutation, Func<string> Make)[]
            {
                ("indented", () => JsonNode.Parse(text)!.ToJsonString(new JsonSerializerOptions { WriteIndented = true })),
                ("extra metadata", () => Set(j => j["metadata"]!["authors"] = new JsonArray("someone"))),
                ("outputs missing from a code cell", () => Set(j => Cell(j, 1).Remove("outputs"))),
            };
            int pick = random.Next(bad.Length + good.Length + 1);
            if (pick == bad.Length + good.Length)
            {
                byte[] bytes = Utf8(text);
                int at = random.Next(bytes.Length);
                File.WriteAllBytes(path, [.. bytes[..at], 0xFF, .. bytes[at..]]);
                family.Run(new FuzzCase("invalid UTF-8", folder, path, false), file => NotebookDocument.Load(file));
                continue;
            }
            var (mutation, make) = pick < bad.Length ? bad[pick] : good[pick - bad.Length];
            File.WriteAllText(path, make());
            family.Run(new FuzzCase(mutation, folder, path, pick >= bad.Length), file => NotebookDocument.Load(file));
        }
        return family;
    }

    // ---- LLaVA instruction data ----

    static byte[] Png(int width, int height, byte grey)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Gray8, SKAlphaType.Opaque);
        bitmap.Erase(new SKColor(grey, grey, grey));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Reads an instruction-data file and decodes every image its samples name.</summary>
    static void ReadInstructionData(string file)
    {
        var data = LlavaInstructionData.Load(file);
        foreach (var sample in data.Samples.Where(s => s.HasImage)) data.Image(sample, ImagePreprocessing.Grey(8)).Dispose();
    }

    const string InstructionJson = """
        [
          {"id": "a", "image": "images/a.png", "conversations": [{"from": "human", "value": "<image>\nHow many?"}, {"from": "gpt", "value": "Two."}]},
          {"id": "b", "image": "images/b.png", "task": "name", "conversations": [{"from": "human", "value": "What is it?\n<image>"}, {"from": "gpt", "value": "A shirt."},
            {"from": "human", "value": "And below?"}, {"from": "gpt", "value": "A bag."}]},
          {"id": "c", "conversations": [{"from": "human", "value": "Say yes."}, {"from": "gpt", "value": "Yes."}]}
        ]
        """;

    Family InstructionData(Random random, string root, int count)
    {
        var family = new Family("LLaVA data", output);
        JsonArray Samples() => JsonNode.Parse(InstructionJson)!.AsArray();
        string With(Action<JsonArray> edit)
        {
            var json = Samples();
            edit(json);
            return json.ToJsonString();
        }
        JsonObject Sample(JsonArray json, int index) => json[index]!.AsObject();
        JsonObject Turn(JsonArray json, int sample, int turn) => Sample(json, sample)["conversations"]![turn]!.AsObject();
        var bad = new (string Mutation, Func<string> Make)[]
        {
            ("the top level an object", () => "{\"samples\": " + InstructionJson + "}"),
            ("a sample a number", () => With(j => j[1] = 5)),
            ("an id missing", () => With(j => Sample(j, 0).Remove("id"))),
            ("an id a list", () => With(j => Sample(j, 0)["id"] = new JsonArray("a"))),
            ("an id twice in the file", () => With(j => Sample(j, 1)["id"] = "a")),
            ("conversations a string", () => With(j => Sample(j, 0)["conversations"] = "hi")),
            ("conversations empty", () => With(j => Sample(j, 2)["conversations"] = new JsonArray())),
            ("a turn from system", () => With(j => Turn(j, 0, 0)["from"] = "system")),
            ("a value a number", () => With(j => Turn(j, 0, 1)["value"] = 3)),
            ("a value null", () => With(j => Turn(j, 1, 0)["value"] = null)),
            ("an empty answer", () => With(j => Turn(j, 0, 1)["value"] = "")),
            ("turns out of order", () => With(j => Turn(j, 2, 0)["from"] = "gpt")),
            ("no placeholder with an image", () => With(j => Turn(j, 0, 0)["value"] = "How many?")),
            ("two placeholders", () => With(j => Turn(j, 0, 0)["value"] = "<image><image>How many?")),
            ("a placeholder without an image", () => With(j => Turn(j, 2, 0)["value"] = "<image>Say yes.")),
            ("an image a number", () => With(j => Sample(j, 0)["image"] = 4)),
            ("an image that is not there", () => With(j => Sample(j, 0)["image"] = "images/missing.png")),
            ("an image that is not an image", () => With(j => Sample(j, 0)["image"] = "notes.txt")),
            ("an image truncated", () => With(j => Sample(j, 1)["image"] = "images/truncated.png")),
            ("a key twice", () => InstructionJson.Replace("{\"id\": \"c\",", "{\"id\": \"c\", \"id\": \"d\",")),
            ("a lone surrogate escape", () => InstructionJson.Replace("Say yes.", "Say \\udfffyes.")),
            ("deep nesting", () => InstructionJson.Replace("{\"id\": \"c\",", "{\"id\": \"c\", \"extra\": " + new string('[', 200) + new string(']', 200) + ",")),
            ("truncated", () => InstructionJson[..random.Next(InstructionJson.Length - 1)]),
        };
        var good = new (string Mutation, Func<string> Make)[]
        {
            ("extra fields", () => With(j => Sample(j, 0)["difficulty"] = 2)),
            ("ids as numbers", () => With(j => { Sample(j, 0)["id"] = 1; Sample(j, 1)["id"] = 2; })),
            ("one line", () => Samples().ToJsonString()),
            ("an image of another size", () => With(j => Sample(j, 0)["image"] = "images/large.png")),
        };
        for (int i = 0; i < count; i++)
        {
            string folder = CaseFolder(root, "llava-data", i);
            Directory.CreateDirectory(Path.Combine(folder, "images"));
            File.WriteAllBytes(Path.Combine(folder, "images", "a.png"), Png(8, 8, 10));
            File.WriteAllBytes(Path.Combine(folder, "images", "b.png"), Png(8, 8, 200));
            File.WriteAllBytes(Path.Combine(folder, "images", "large.png"), Png(40, 24, 90));
            byte[] png = Png(8, 8, 60);
            File.WriteAllBytes(Path.Combine(folder, "images", "truncated.png"), png[..(png.Length / 2)]);
            File.WriteAllText(Path.Combine(folder, "notes.txt"), "not an image");
            string path = Path.Combine(folder, "data.json");
            int pick = random.Next(bad.Length + good.Length + 1);
            if (pick == bad.Length + good.Length)
            {
                byte[] bytes = Utf8(InstructionJson);
                int at = random.Next(bytes.Length);
                File.WriteAllBytes(path, [.. bytes[..at], 0xC0, .. bytes[at..]]);
                family.Run(new FuzzCase("invalid UTF-8", folder, path, false), ReadInstructionData);
                continue;
            }
            var (mutation, make) = pick < bad.Length ? bad[pick] : good[pick - bad.Length];
            File.WriteAllText(path, make());
            family.Run(new FuzzCase(mutation, folder, path, pick >= bad.Length), ReadInstructionData);
        }
        return family;
    }

    // ---- images ----

    /// <summary>PNG's CRC-32 (ISO 3309) of a chunk's type and data.</summary>
    static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320 & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }

    /// <summary>The PNG with the width and height of its IHDR chunk replaced, and the chunk's CRC made right again.</summary>
    static byte[] Resized(byte[] png, uint width, uint height)
    {
        var bytes = (byte[])png.Clone();
        // Signature (8), then IHDR: length (4), type (4), width (4), height (4), five more bytes, CRC (4).
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(16), width);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(20), height);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(29), Crc32(bytes.AsSpan(12, 17)));
        return bytes;
    }

    Family Images(Random random, string root, int count)
    {
        var family = new Family("images", output);
        // Noise, so that the compressed rows fill the image data and a cut in its first half loses rows.
        byte[] png;
        using (var noise = new SKBitmap(12, 10, SKColorType.Gray8, SKAlphaType.Opaque))
        {
            var pixels = new byte[noise.RowBytes * noise.Height];
            new Random(7).NextBytes(pixels);
            System.Runtime.InteropServices.Marshal.Copy(pixels, 0, noise.GetPixels(), pixels.Length);
            using var data = noise.Encode(SKEncodedImageFormat.Png, 100);
            png = data.ToArray();
        }
        int idat = Encoding.ASCII.GetString(png).IndexOf("IDAT", StringComparison.Ordinal);
        int idatLength = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(idat - 4));
        byte[] jpeg;
        using (var bitmap = new SKBitmap(12, 10, SKColorType.Rgba8888, SKAlphaType.Opaque))
        {
            bitmap.Erase(new SKColor(10, 200, 30));
            using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 90);
            jpeg = data.ToArray();
        }
        for (int i = 0; i < count; i++)
        {
            string folder = CaseFolder(root, "images", i);
            string path = Path.Combine(folder, "image.png");
            var (mutation, bytes, valid) = random.Next(9) switch
            {
                0 => ("a header of 100,000 x 100,000 pixels", Resized(png, 100_000, 100_000), false),
                1 => ("a header of 2^31 - 1 x 1 pixels", Resized(png, int.MaxValue, 1), false),
                2 => ("a header of 0 x 10 pixels", Resized(png, 0, 10), false),
                3 => ("cut in the first half of the image data", png[..(idat + 4 + random.Next(idatLength / 2))], false),
                4 => ("cut inside the header", png[..random.Next(8, 33)], false),
                5 => ("empty", Array.Empty<byte>(), false),
                6 => ("text", Utf8("not an image at all"), false),
                7 => ("a JPEG under a .png name", jpeg, true),
                _ => ("as written", png, true),
            };
            File.WriteAllBytes(path, bytes);
            family.Run(new FuzzCase(mutation, folder, path, valid), file => ImagePreprocessing.Grey(8).Load(file).Dispose());
        }
        return family;
    }

    // ---- training checkpoints ----

    static (TinyModel Model, AdapterHandle Adapters, TrainingStage Stage, TrainingObjective<(Tensor X, Tensor Y)> Objective) TrainingSetup()
    {
        var model = new TinyModel(seed: 3);
        var handle = AdapterInjection.Inject(model, new DualLoraConfig(Rank: 2, Dropout: 0));
        var stage = new TrainingStage("stage2", [TrainingStage.AdaptersOnly(handle, 1e-2).Groups[0],
            new GroupRule("projector", n => n.StartsWith("mm_projector.", StringComparison.Ordinal), 3e-3)]);
        return (model, handle, stage, new(b => nn.functional.mse_loss(model.call(b.X), b.Y), b => b.X.shape[0]));
    }

    Family Checkpoints(Random random, string root, int count)
    {
        var family = new Family("training checkpoints", output);
        string run = Path.Combine(root, "pristine-run");
        using (var scope = NewDisposeScope())
        {
            var (model, adapters, stage, objective) = TrainingSetup();
            using var trainer = new Trainer<(Tensor X, Tensor Y)>(model, stage, objective, new TrainerOptions(2) { OutputFolder = run, Seed = 1 }, adapters);
            trainer.Train(BatchSource.Of(p => (randn(4, 8), randn(4, 8))));
        }
        string pristine = TrainingCheckpoint.Latest(run)!;
        string[] files = Directory.GetFiles(pristine, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(pristine, f)).ToArray();
        string state = File.ReadAllText(Path.Combine(pristine, TrainingCheckpoint.StateFile));
        string[] tensorFiles = [TrainingCheckpoint.TrainableFile, TrainingCheckpoint.OptimizerFile];
        for (int i = 0; i < count; i++)
        {
            string folder = CaseFolder(root, "checkpoints", i);
            foreach (string file in files)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(folder, file))!);
                File.Copy(Path.Combine(pristine, file), Path.Combine(folder, file));
            }
            string statePath = Path.Combine(folder, TrainingCheckpoint.StateFile);
            string SetState(string key, string rawValue)
            {
                var json = JsonNode.Parse(state)!.AsObject();
                json[key] = JsonNode.Parse(rawValue);
                return json.ToJsonString();
            }
            string mutation;
            bool? valid;
            Func<bool>? oracle = null;
            switch (random.Next(12))
            {
                case 0: (mutation, valid) = ("step a string", false); File.WriteAllText(statePath, SetState("step", "\"2\"")); break;
                case 1: (mutation, valid) = ("step negative", false); File.WriteAllText(statePath, SetState("step", "-1")); break;
                case 2: (mutation, valid) = ("another format", false); File.WriteAllText(statePath, SetState("format", "\"other\"")); break;
                case 3: (mutation, valid) = ("trainable a list", false); File.WriteAllText(statePath, SetState("trainable", "[]")); break;
                case 4: (mutation, valid) = ("another total of steps", false); File.WriteAllText(statePath, SetState("total_steps", "7")); break;
                case 5: (mutation, valid) = ("the state truncated", false); File.WriteAllText(statePath, state[..random.Next(state.Length - 1)]); break;
                case 6: (mutation, valid) = ("a key twice in the state", false); File.WriteAllText(statePath, state.Replace("{", "{\"step\": 1, ", StringComparison.Ordinal)); break;
                case 7: (mutation, valid) = ("no state file", false); File.Delete(statePath); break;
                case 8:
                {
                    string adapterConfig = Path.Combine(folder, TrainingCheckpoint.AdapterFolder, AdapterFiles.ConfigFile);
                    var json = JsonNode.Parse(File.ReadAllText(adapterConfig))!.AsObject();
                    json["r"] = 3;
                    File.WriteAllText(adapterConfig, json.ToJsonString());
                    (mutation, valid) = ("the adapter's rank changed", false);
                    break;
                }
                case 9: (mutation, valid) = ("as written", true); break;
                default:
                {
                    string file = Pick(random, tensorFiles);
                    string target = Path.Combine(folder, file);
                    byte[] before = File.ReadAllBytes(target);
                    var (name, bytes, tensorValid) = MutateSafetensors(random, before);
                    if (name.StartsWith("symlink", StringComparison.Ordinal)) (name, bytes, tensorValid) = ("truncated", bytes[..random.Next(bytes.Length)], null);
                    // A valid file of other tensors or other shapes does not fit the run.
                    if (tensorValid == true && !SameTensors(bytes, before)) tensorValid = false;
                    File.WriteAllBytes(target, bytes);
                    (mutation, valid) = ($"{file}: {name}", tensorValid);
                    oracle = () => SameTensors(bytes, before);
                    break;
                }
            }
            family.Run(new FuzzCase(mutation, folder, folder, valid), checkpoint =>
            {
                var (model, adapters, stage, objective) = TrainingSetup();
                using var trainer = new Trainer<(Tensor X, Tensor Y)>(model, stage, objective, new TrainerOptions(2) { Seed = 1 }, adapters);
                trainer.Resume(checkpoint);
            }, oracle);
        }
        return family;
    }
}
