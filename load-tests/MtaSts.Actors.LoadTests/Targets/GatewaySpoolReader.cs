using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// Read-only scan of a stopped gateway's spool (<c>&lt;data-dir&gt;/spool/seg-*.log</c>): which messages still have
/// recipients without a done record, i.e. what the gateway would recover on a restart. Unlike opening
/// <see cref="SegmentSpool"/> (which truncates torn tails and deletes finished segments, as a restart does) this
/// changes nothing, so a kept run directory (MTASTS_LOAD_KEEP=1) stays as the gateway left it.
/// Format (SegmentSpool): 16-byte header "MTASPOOL" + u32 version; records u32 length | u32 crc | u8 type | payload;
/// message payload i64 mid | i32 envLen | envelope | i32 bodyLen | body; done payload i64 mid | i32 n | i32 rid × n.
/// </summary>
public static class GatewaySpoolReader
{
    private const int SegmentHeaderSize = 16, RecordHeaderSize = 9;
    private const byte TypeMessage = 1, TypeDone = 2;

    public sealed record Outstanding(long Mid, string ReversePath, string SegmentPath, long BodyOffset, int BodyLength, int OutstandingRecipients);

    public static (IReadOnlyList<Outstanding> Messages, IReadOnlyList<string> Warnings) Scan(string spoolDir)
    {
        var warnings = new List<string>();
        var live = new Dictionary<long, (Outstanding Message, HashSet<int> Rids)>();
        if (!Directory.Exists(spoolDir)) return ([], [$"no spool directory {spoolDir}"]);
        var segments = Directory.EnumerateFiles(spoolDir, "seg-*.log")
            .Select(f => (Path: f, Id: long.TryParse(Path.GetFileName(f).AsSpan(4, Path.GetFileName(f).Length - 8), NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : -1))
            .Where(s => s.Id > 0).OrderBy(s => s.Id).ToList();
        var header = new byte[RecordHeaderSize];
        var fixedPart = new byte[12];
        foreach (var (path, _) in segments)
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
            var length = fs.Length;
            var magic = new byte[SegmentHeaderSize];
            if (fs.ReadAtLeast(magic, SegmentHeaderSize, throwOnEndOfStream: false) < SegmentHeaderSize || !magic.AsSpan(0, 8).SequenceEqual("MTASPOOL"u8))
            {
                warnings.Add($"{Path.GetFileName(path)}: no segment header ({length} bytes)");
                continue;
            }
            long pos = SegmentHeaderSize;
            while (pos < length)
            {
                if (length - pos < RecordHeaderSize) { warnings.Add($"{Path.GetFileName(path)}: partial record header at {pos}"); break; }
                fs.Position = pos;
                fs.ReadExactly(header);
                var len = BinaryPrimitives.ReadUInt32LittleEndian(header);
                var type = header[8];
                if (len > int.MaxValue || length - pos - RecordHeaderSize < len) { warnings.Add($"{Path.GetFileName(path)}: partial record at {pos}"); break; }
                if (type == TypeMessage && len >= 16)
                {
                    fs.ReadExactly(fixedPart);
                    var mid = BinaryPrimitives.ReadInt64LittleEndian(fixedPart);
                    var envLen = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(8));
                    if (envLen < 0 || 16L + envLen > len) { warnings.Add($"{Path.GetFileName(path)}: malformed message record at {pos}"); break; }
                    var env = new byte[envLen + 4];
                    fs.ReadExactly(env);
                    var envelope = EnvelopeCodec.Deserialize(env.AsSpan(0, envLen));
                    var bodyLen = BinaryPrimitives.ReadInt32LittleEndian(env.AsSpan(envLen));
                    var rids = envelope.Recipients.Select(r => r.Rid).ToHashSet();
                    live.TryAdd(mid, (new Outstanding(mid, envelope.ReversePath, path, pos + RecordHeaderSize + 16 + envLen, bodyLen, rids.Count), rids));
                }
                else if (type == TypeDone && len >= 12)
                {
                    var payload = new byte[len];
                    fs.ReadExactly(payload);
                    var mid = BinaryPrimitives.ReadInt64LittleEndian(payload);
                    var n = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(8));
                    if (live.TryGetValue(mid, out var e))
                    {
                        for (var i = 0; i < n && 12 + 4 * i + 4 <= len; i++) e.Rids.Remove(BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(12 + 4 * i)));
                        if (e.Rids.Count == 0) live.Remove(mid);
                    }
                }
                else { warnings.Add($"{Path.GetFileName(path)}: unknown record type {type} at {pos}"); break; }
                pos += RecordHeaderSize + len;
            }
        }
        return (live.Values.OrderBy(v => v.Message.Mid).Select(v => v.Message with { OutstandingRecipients = v.Rids.Count }).ToArray(), warnings);
    }

    /// <summary>The X-Load-Id in a held message: in its header section, or anywhere for a DSN (the returned message).</summary>
    public static long? LoadIdOf(Outstanding m, string runTag)
    {
        using var fs = new FileStream(m.SegmentPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        fs.Position = m.BodyOffset;
        var body = new byte[Math.Min(m.BodyLength, 256 * 1024)];
        fs.ReadExactly(body);
        return FindLoadId(Encoding.ASCII.GetString(body), runTag, headersOnly: m.ReversePath.Length > 0);
    }

    public static long? FindLoadId(string text, string runTag, bool headersOnly)
    {
        var prefix = Smtp.MessageFactory.LoadIdHeader + ":";
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (headersOnly && line.Length == 0) break;
            if (line.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
                && Smtp.MessageFactory.TryParseLoadId(line.AsSpan(prefix.Length), runTag, out var id)) return id;
        }
        return null;
    }
}
