using System.Text;

namespace MtaSts.Actors.Spool;

/// <summary>
/// Compact, versioned binary form of an <see cref="Envelope"/> for the spool. The first byte is the format
/// version; a reader refuses versions it does not know rather than guessing (a newer spool on an older binary).
/// </summary>
public static class EnvelopeCodec
{
    public const byte CurrentVersion = 1;

    public static byte[] Serialize(Envelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        using var ms = new MemoryStream(128 + 64 * envelope.Recipients.Count);
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(CurrentVersion);
            w.Write(envelope.ReversePath);
            w.Write(envelope.ReceivedAt.UtcTicks);
            w.Write((short)envelope.ReceivedAt.Offset.TotalMinutes);
            w.Write(envelope.Icid);
            w.Write(envelope.ClientHelo);
            w.Write(envelope.ClientAddress);
            WriteOptional(w, envelope.EnvId);
            w.Write((byte)envelope.Ret);
            byte flags = (byte)((envelope.EightBitMime ? 1 : 0) | (envelope.SmtpUtf8 ? 2 : 0));
            w.Write(flags);
            w.Write(envelope.Recipients.Count);
            foreach (var r in envelope.Recipients)
            {
                w.Write(r.Rid);
                w.Write(r.Address);
                w.Write((byte)r.Notify);
                WriteOptional(w, r.OriginalRecipient);
            }
        }
        return ms.ToArray();
    }

    public static Envelope Deserialize(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) throw new InvalidDataException("empty envelope");
        if (data[0] != CurrentVersion)
            throw new InvalidDataException($"unsupported envelope format version {data[0]} (this build reads {CurrentVersion})");
        using var ms = new MemoryStream(data.ToArray(), writable: false);
        using var r = new BinaryReader(ms, Encoding.UTF8);
        r.ReadByte();
        var reversePath = r.ReadString();
        var utcTicks = r.ReadInt64();
        var offsetMinutes = r.ReadInt16();
        var receivedAt = new DateTimeOffset(utcTicks, TimeSpan.Zero).ToOffset(TimeSpan.FromMinutes(offsetMinutes));
        var icid = r.ReadInt64();
        var helo = r.ReadString();
        var address = r.ReadString();
        var envId = ReadOptional(r);
        var ret = (DsnRet)r.ReadByte();
        var flags = r.ReadByte();
        var count = r.ReadInt32();
        if (count < 0 || count > 10_000_000) throw new InvalidDataException($"bad recipient count {count}");
        var recipients = new Recipient[count];
        for (int i = 0; i < count; i++)
        {
            var rid = r.ReadInt32();
            var addr = r.ReadString();
            var notify = (DsnNotify)r.ReadByte();
            var orcpt = ReadOptional(r);
            recipients[i] = new Recipient(rid, addr, notify, orcpt);
        }
        if (ms.Position != ms.Length) throw new InvalidDataException("trailing bytes after envelope");
        return new Envelope(reversePath, recipients, receivedAt, icid, helo, address, envId, ret,
            (flags & 1) != 0, (flags & 2) != 0);
    }

    private static void WriteOptional(BinaryWriter w, string? value)
    {
        w.Write(value is not null);
        if (value is not null) w.Write(value);
    }

    private static string? ReadOptional(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;
}
