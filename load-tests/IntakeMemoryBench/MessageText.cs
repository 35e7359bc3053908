using System.Text;

namespace MtaSts.Actors.IntakeMemoryBench;

/// <summary>
/// The DATA section of a large text message, as octets on the wire: headers, then body lines of words (mostly 40-78
/// characters, blank lines between paragraphs, 3 % long lines up to 998 characters, now and then a line starting with
/// "." — dot-stuffed), each ending in CRLF; exactly <c>size</c> octets before the terminating ".".
/// The body is one pre-generated block (4 MiB) written again and again, so generating it costs the load generator
/// nothing during the run; per-message headers make every message distinct.
/// </summary>
internal sealed class MessageText
{
    private static readonly string[] Words =
    [
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
        "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
        "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
        "who", "so", "no", "invoice", "shipment", "delivery", "account", "statement", "quarterly", "report",
        "customer", "order", "reference", "attached", "please", "regards", "meeting", "schedule", "update",
        "contract", "payment", "balance", "transfer", "approval", "department", "warehouse", "inventory",
        "gateway", "message", "mailbox", "policy", "security", "transport", "certificate", "recipient", "2026",
        "Q3", "EUR", "USD", "#4471", "ticket", "follow-up", "yesterday", "tomorrow", "Monday", "Friday", "thanks",
    ];

    private const int BlockSize = 4 * 1024 * 1024;
    private readonly byte[] _block;
    private readonly int[] _lineEnds; // offset just after each CRLF in _block

    public MessageText(int seed = 4711)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder(BlockSize + 2048);
        var ends = new List<int>();
        var line = new StringBuilder(1000);
        while (sb.Length < BlockSize)
        {
            line.Clear();
            var roll = rng.NextDouble();
            if (roll < 0.08) { } // blank line between paragraphs
            else
            {
                var max = roll < 0.11 ? rng.Next(200, 999) : rng.Next(40, 79);
                if (roll > 0.995) line.Append("...");
                while (true)
                {
                    var w = Words[rng.Next(Words.Length)];
                    var sep = line.Length == 0 || line[^1] == '.' && line.Length == 3 ? "" : " ";
                    if (line.Length + sep.Length + w.Length + 1 > max) break;
                    line.Append(sep).Append(w);
                }
                if (line.Length < max) line.Append('.');
            }
            // RFC 5321 §4.5.2: a line starting with "." is sent with one more "." (its length stays ≤ 1000 octets).
            if (line.Length > 0 && line[0] == '.') sb.Append('.');
            sb.Append(line).Append("\r\n");
            ends.Add(sb.Length);
        }
        _block = Encoding.ASCII.GetBytes(sb.ToString());
        _lineEnds = ends.ToArray();
    }

    /// <summary>Writes one message of exactly <paramref name="size"/> octets (headers and dot-stuffed body, CRLF line
    /// ends), then the terminating ".CRLF". Returns the octets written, terminator included.</summary>
    public async Task<long> WriteAsync(Stream s, long size, string headers, CancellationToken ct)
    {
        var head = Encoding.ASCII.GetBytes(headers.ReplaceLineEndings("\r\n") + "\r\n");
        await s.WriteAsync(head, ct).ConfigureAwait(false);
        long left = size - head.Length;
        while (left >= _block.Length)
        {
            await s.WriteAsync(_block, ct).ConfigureAwait(false);
            left -= _block.Length;
        }
        // The rest: whole lines of the block, then filler lines ("xxx…", ≤ 1000 octets each with the CRLF) for the
        // last few octets; a line has at least its CRLF, so a remainder of exactly 1 takes one more line off the block.
        var idx = Array.BinarySearch(_lineEnds, (int)left);
        var line = idx >= 0 ? idx : ~idx - 1; // index of the last line that fits entirely, -1 if none
        var cut = line >= 0 ? _lineEnds[line] : 0;
        if (left - cut == 1) cut = line >= 1 ? _lineEnds[line - 1] : 0;
        if (cut > 0) await s.WriteAsync(_block.AsMemory(0, cut), ct).ConfigureAwait(false);
        left -= cut;
        var tail = new StringBuilder();
        while (left > 0)
        {
            var n = left <= 1000 ? (int)left : left - 1000 >= 2 ? 1000 : 998;
            tail.Append('x', n - 2).Append("\r\n");
            left -= n;
        }
        tail.Append(".\r\n");
        await s.WriteAsync(Encoding.ASCII.GetBytes(tail.ToString()), ct).ConfigureAwait(false);
        return size + 3;
    }
}
