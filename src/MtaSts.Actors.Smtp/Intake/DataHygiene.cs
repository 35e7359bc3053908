using System.Buffers;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>What is wrong with a DATA line, if anything (SMTP smuggling lookalikes, RFC 5321 §2.3.8 and §4.1.1.4).</summary>
[Flags]
internal enum DataFlaw
{
    None = 0,
    /// <summary>The line ended in LF without CR.</summary>
    BareLf = 1,
    /// <summary>A CR inside the line, not followed by LF.</summary>
    BareCr = 2,
    /// <summary>A NUL octet (RFC 5322 §2.3 forbids it in a message).</summary>
    Nul = 4,
}

/// <summary>Pure checks and rewrites of DATA lines; the session decides what to do with them
/// (<see cref="BareLineEndingPolicy"/>).</summary>
internal static class DataHygiene
{
    private static readonly SearchValues<byte> CrOrNul = SearchValues.Create("\r\0"u8);

    /// <param name="content">The line without its terminator.</param>
    /// <param name="bareLf">The terminator was a bare LF.</param>
    public static DataFlaw Inspect(ReadOnlySpan<byte> content, bool bareLf)
    {
        var flaw = bareLf ? DataFlaw.BareLf : DataFlaw.None;
        int i = content.IndexOfAny(CrOrNul);
        if (i < 0) return flaw;
        foreach (var b in content[i..])
        {
            if (b == (byte)'\r') flaw |= DataFlaw.BareCr;
            else if (b == 0) flaw |= DataFlaw.Nul;
        }
        return flaw;
    }

    /// <summary>
    /// The line as the vendor's "Clean" would store it: every bare CR becomes CRLF, NUL is dropped, and the line ends
    /// in CRLF. The result never contains a CR or LF that is not part of a CRLF.
    /// </summary>
    /// <returns>The number of bytes written to <paramref name="destination"/> (at most 2 × content + 2).</returns>
    public static int Normalize(ReadOnlySpan<byte> content, Span<byte> destination)
    {
        int n = 0;
        foreach (var b in content)
        {
            if (b == 0) continue;
            destination[n++] = b;
            if (b == (byte)'\r') destination[n++] = (byte)'\n';
        }
        destination[n++] = (byte)'\r';
        destination[n++] = (byte)'\n';
        return n;
    }

    /// <summary>A lone "." line that is not &lt;CRLF&gt;.&lt;CRLF&gt;: how a bare-LF client ends DATA ("\n.\n"), and
    /// what a smuggling attack hopes a lenient receiver takes for the end. Never the end of data here.</summary>
    public static bool IsLookalikeEnd(ReadOnlySpan<byte> content, bool bareLf, bool previousBareLf) =>
        content.Length == 1 && content[0] == (byte)'.' && (bareLf || previousBareLf);
}
