using System.Globalization;
using System.Text;

namespace MtaSts.Actors.LoadTests.Smtp;

/// <summary>
/// Builds the DATA payload: a few headers that are unique per message (X-Load-Id, X-Load-Sent in unix µs) and a
/// shared body of the requested size. The body is plain 76-column ASCII with no leading dots, so no dot-stuffing
/// and no 8BITMIME/BDAT negotiation can change what is measured.
/// </summary>
public sealed class MessageFactory
{
    public const string LoadIdHeader = "X-Load-Id";
    public const string LoadSentHeader = "X-Load-Sent";
    public const string Sender = "load@loadgen.test";

    private readonly byte[] _body;
    private readonly string _runTag;

    public MessageFactory(string runTag, int sizeBytes)
    {
        _runTag = runTag;
        var sb = new StringBuilder(sizeBytes + 128);
        var line = new string('x', 74);
        var n = 0;
        // Header part is ~300 bytes; fill the rest so the whole message is close to sizeBytes.
        while (sb.Length < Math.Max(0, sizeBytes - 300))
        {
            sb.Append(n++ % 10).Append(line.AsSpan(0, Math.Min(line.Length, Math.Max(1, sizeBytes - 300 - sb.Length - 3)))).Append("\r\n");
        }
        sb.Append(".\r\n"); // end of DATA
        _body = Encoding.ASCII.GetBytes(sb.ToString());
        SizeBytes = _body.Length + 300;
    }

    public int SizeBytes { get; }

    /// <summary>Writes the complete DATA section (headers, body, terminating dot) into <paramref name="buffer"/>; returns its length.</summary>
    public int Write(long id, string recipient, long sentUnixUs, ref byte[] buffer)
    {
        var header = string.Create(CultureInfo.InvariantCulture,
            $"From: <{Sender}>\r\nTo: <{recipient}>\r\nSubject: load {id}\r\nDate: {DateTimeOffset.UtcNow:r}\r\nMessage-ID: <{_runTag}.{id}@loadgen.test>\r\n{LoadIdHeader}: {_runTag}-{id}\r\n{LoadSentHeader}: {sentUnixUs}\r\n\r\n");
        var need = header.Length + _body.Length;
        if (buffer.Length < need) buffer = new byte[need + 1024];
        var h = Encoding.ASCII.GetBytes(header, buffer);
        _body.CopyTo(buffer.AsSpan(h));
        return h + _body.Length;
    }

    /// <summary>Parses "tag-123" back into 123 when the tag is ours.</summary>
    public static bool TryParseLoadId(ReadOnlySpan<char> value, string runTag, out long id)
    {
        id = 0;
        value = value.Trim();
        if (!value.StartsWith(runTag, StringComparison.Ordinal) || value.Length <= runTag.Length + 1 || value[runTag.Length] != '-') return false;
        return long.TryParse(value[(runTag.Length + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out id);
    }
}
