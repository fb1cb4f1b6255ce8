using System.Buffers.Binary;
using System.Text;
using DualLora.IO;

namespace DualLora.Runtime;

/// <summary>What <see cref="ElfSymbolVersions.MarkNeededVersionWeak"/> did to the file.</summary>
public enum WeakMarkResult { Marked, AlreadyWeak }

/// <summary>
/// Reads and edits the symbol-version tables of a 64-bit little-endian ELF shared library:
/// the versions it needs from other libraries (<c>.gnu.version_r</c>, Elf64_Verneed/Elf64_Vernaux)
/// and the versions it defines (<c>.gnu.version_d</c>, Elf64_Verdef/Elf64_Verdaux).
/// Only what loading TorchSharp on GCC-12 systems requires; see <see cref="TorchRuntime"/>.
/// </summary>
public static class ElfSymbolVersions
{
    const uint SectionTypeVersionNeed = 0x6ffffffe;   // SHT_GNU_verneed
    const uint SectionTypeVersionDefine = 0x6ffffffd; // SHT_GNU_verdef
    const ushort VersionFlagWeak = 0x2;               // VER_FLG_WEAK: the loader only warns when missing

    /// <summary>A version a library needs: the file it needs it from, its name, and the vna_flags.</summary>
    public sealed record NeededVersion(string File, string Name, ushort Flags, long FlagsOffset)
    {
        public bool IsWeak => (Flags & VersionFlagWeak) != 0;
    }

    /// <summary>Every (file, version) pair in the library's <c>.gnu.version_r</c> section.</summary>
    public static IReadOnlyList<NeededVersion> ReadNeededVersions(string path)
    {
        var elf = ElfImage.Read(path);
        var section = elf.FindSection(SectionTypeVersionNeed)
            ?? throw new InvalidDataException($"{path}: the ELF file has no .gnu.version_r (version needs) section.");
        var result = new List<NeededVersion>();
        long entry = section.Offset;
        for (uint i = 0; i < section.Info; i++)
        {
            ushort count = elf.U16(entry + 2);
            string file = elf.String(section.Link, elf.U32(entry + 4));
            long aux = entry + elf.U32(entry + 8);
            for (int j = 0; j < count; j++)
            {
                ushort flags = elf.U16(aux + 4);
                string name = elf.String(section.Link, elf.U32(aux + 8));
                result.Add(new NeededVersion(file, name, flags, aux + 4));
                aux += elf.U32(aux + 12);
            }
            uint next = elf.U32(entry + 12);
            if (next == 0) break;
            entry += next;
        }
        return result;
    }

    /// <summary>Every version name the library defines in its <c>.gnu.version_d</c> section.</summary>
    public static IReadOnlySet<string> ReadDefinedVersions(string path)
    {
        var elf = ElfImage.Read(path);
        var section = elf.FindSection(SectionTypeVersionDefine)
            ?? throw new InvalidDataException($"{path}: the ELF file has no .gnu.version_d (version definitions) section.");
        var names = new HashSet<string>(StringComparer.Ordinal);
        long entry = section.Offset;
        for (uint i = 0; i < section.Info; i++)
        {
            long aux = entry + elf.U32(entry + 12);       // vd_aux: the first Verdaux names the version
            names.Add(elf.String(section.Link, elf.U32(aux)));
            uint next = elf.U32(entry + 16);
            if (next == 0) break;
            entry += next;
        }
        return names;
    }

    /// <summary>
    /// Sets VER_FLG_WEAK on the entry that needs <paramref name="version"/> from <paramref name="fromFile"/>,
    /// so the dynamic loader warns instead of refusing when that version is absent. Changes only the
    /// two bytes of that entry's vna_flags; the file is rewritten atomically (temporary file, then rename).
    /// </summary>
    public static WeakMarkResult MarkNeededVersionWeak(string path, string fromFile, string version)
    {
        var entry = ReadNeededVersions(path).FirstOrDefault(v => v.File == fromFile && v.Name == version)
            ?? throw new InvalidDataException(
                $"{path}: .gnu.version_r has no entry needing version '{version}' from '{fromFile}'.");
        if (entry.IsWeak) return WeakMarkResult.AlreadyWeak;

        byte[] bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((int)entry.FlagsOffset, 2), (ushort)(entry.Flags | VersionFlagWeak));
        AtomicFile.WriteAllBytes(path, bytes);
        return WeakMarkResult.Marked;
    }

    /// <summary>The parts of an ELF64 LE image that the version tables need: section headers and string tables.</summary>
    sealed class ElfImage
    {
        public sealed record Section(uint Type, long Offset, long Size, uint Link, uint Info);

        readonly string path;
        readonly byte[] bytes;
        readonly Section[] sections;

        ElfImage(string path, byte[] bytes, Section[] sections) { this.path = path; this.bytes = bytes; this.sections = sections; }

        public static ElfImage Read(string path)
        {
            byte[] bytes = File.ReadAllBytes(path);
            if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F')
                throw new InvalidDataException($"{path}: not an ELF file (the first bytes are not 0x7F 'E' 'L' 'F').");
            if (bytes[4] != 2 || bytes[5] != 1)
                throw new InvalidDataException($"{path}: only 64-bit little-endian ELF files are supported (EI_CLASS={bytes[4]}, EI_DATA={bytes[5]}).");
            long sectionTable = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(0x28));
            int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(0x3A));
            int count = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(0x3C));
            if (count == 0 || entrySize < 64 || sectionTable < 0 || sectionTable + (long)count * entrySize > bytes.Length)
                throw new InvalidDataException($"{path}: the ELF section header table is missing or lies outside the file.");
            var sections = new Section[count];
            for (int i = 0; i < count; i++)
            {
                var header = bytes.AsSpan((int)(sectionTable + (long)i * entrySize), 64);
                var section = new Section(
                    Type: BinaryPrimitives.ReadUInt32LittleEndian(header[4..]),
                    Offset: (long)BinaryPrimitives.ReadUInt64LittleEndian(header[24..]),
                    Size: (long)BinaryPrimitives.ReadUInt64LittleEndian(header[32..]),
                    Link: BinaryPrimitives.ReadUInt32LittleEndian(header[40..]),
                    Info: BinaryPrimitives.ReadUInt32LittleEndian(header[44..]));
                // SHT_NOBITS (8) sections occupy no bytes of the file.
                if (section.Type != 8 && section.Type != 0 && (section.Offset < 0 || section.Offset + section.Size > bytes.Length))
                    throw new InvalidDataException($"{path}: ELF section {i} lies outside the file.");
                sections[i] = section;
            }
            return new ElfImage(path, bytes, sections);
        }

        public Section? FindSection(uint type) => sections.FirstOrDefault(s => s.Type == type);

        public ushort U16(long offset) => BinaryPrimitives.ReadUInt16LittleEndian(Slice(offset, 2));
        public uint U32(long offset) => BinaryPrimitives.ReadUInt32LittleEndian(Slice(offset, 4));

        public string String(uint stringSection, uint offset)
        {
            if (stringSection >= sections.Length)
                throw new InvalidDataException($"{path}: a version table links to section {stringSection}, which does not exist.");
            var table = sections[stringSection];
            if (offset >= table.Size)
                throw new InvalidDataException($"{path}: a version name lies outside its string table.");
            var span = bytes.AsSpan((int)(table.Offset + offset), (int)(table.Size - offset));
            int end = span.IndexOf((byte)0);
            return Encoding.ASCII.GetString(end < 0 ? span : span[..end]);
        }

        ReadOnlySpan<byte> Slice(long offset, int length)
        {
            if (offset < 0 || offset + length > bytes.Length)
                throw new InvalidDataException($"{path}: a version table entry lies outside the file (offset {offset}).");
            return bytes.AsSpan((int)offset, length);
        }
    }
}
