using System.Globalization;
using System.Text;

namespace MtaSts.Actors.Smtp.Replies;

/// <summary>RFC 5321 §4.2.1 reply classes by first digit; plus replies that never came (timeouts, DNS, expiry).</summary>
public enum SmtpReplyClass
{
    /// <summary>2yz positive completion.</summary>
    Success,
    /// <summary>3yz positive intermediate (354 after DATA).</summary>
    Intermediate,
    /// <summary>4yz transient negative completion: soft bounce, retry later.</summary>
    Transient,
    /// <summary>5yz permanent negative completion: hard bounce, DSN now.</summary>
    Permanent,
}

/// <summary>
/// An SMTP reply: the three-digit code, the text lines (as received, each may start with an enhanced status code) and
/// the RFC 3463 enhanced status code of the first line if it has one whose class matches the reply code (RFC 2034 §4).
/// <see cref="Code"/> 0 is the vendor's <c>'000'</c>: no reply was received (timeout, connection error, DNS, expiry).
/// </summary>
public sealed record SmtpReply
{
    public int Code { get; }
    public IReadOnlyList<string> Lines { get; }
    public EnhancedStatusCode? Enhanced { get; }

    private SmtpReply(int code, IReadOnlyList<string> lines, EnhancedStatusCode? enhanced)
    {
        Code = code;
        Lines = lines;
        Enhanced = enhanced;
    }

    public bool IsNoReply => Code == 0;

    /// <summary>Success/Intermediate/Transient/Permanent by the first digit. A missing reply is classed by its status
    /// code if one was given (e.g. 5.1.2 for NXDOMAIN is permanent) and is transient otherwise (timeouts are retried).</summary>
    public SmtpReplyClass Class => (Code / 100) switch
    {
        2 => SmtpReplyClass.Success,
        3 => SmtpReplyClass.Intermediate,
        4 => SmtpReplyClass.Transient,
        5 => SmtpReplyClass.Permanent,
        _ => Enhanced?.Class == 5 ? SmtpReplyClass.Permanent : SmtpReplyClass.Transient,
    };

    public bool IsSuccess => Class == SmtpReplyClass.Success;
    /// <summary>2yz or 3yz: the command was accepted (RFC 5321 §4.2.1).</summary>
    public bool IsPositive => Class is SmtpReplyClass.Success or SmtpReplyClass.Intermediate;
    public bool IsTransient => Class == SmtpReplyClass.Transient;
    public bool IsPermanent => Class == SmtpReplyClass.Permanent;

    /// <summary>The enhanced code, or one derived from the class (<c>2.0.0</c>, <c>4.0.0</c>, <c>5.0.0</c>) when the server sent none
    /// (RFC 3463 §3.1: X.0.0 "other undefined status").</summary>
    public EnhancedStatusCode Status => Enhanced ?? new EnhancedStatusCode(Class switch
    {
        SmtpReplyClass.Success or SmtpReplyClass.Intermediate => 2,
        SmtpReplyClass.Permanent => 5,
        _ => 4,
    }, 0, 0);

    /// <summary>All lines joined by a space, as received (enhanced codes included).</summary>
    public string Text => string.Join(' ', Lines);

    /// <summary>The text with the leading enhanced code of each line removed (RFC 2034 §4 repeats it on each line).</summary>
    public string Message => string.Join(' ', Lines.Select(l =>
        EnhancedStatusCode.TryParseAtStart(l, out _, out var n) ? l[n..].TrimStart() : l)).Trim();

    /// <summary>RFC 3464 §2.3.6 diagnostic text: <c>550 5.1.1 user unknown</c> (no code for a missing reply).</summary>
    public string DiagnosticText => IsNoReply ? Text : $"{Code.ToString("000", CultureInfo.InvariantCulture)} {Text}".TrimEnd();

    /// <summary>A reply built from a code and text whose lines are separated by LF or CRLF (MailKit's form).</summary>
    public static SmtpReply Create(int code, string? text)
    {
        if (code is < 200 or > 599 || (code / 10) % 10 > 5)
            throw new ArgumentOutOfRangeException(nameof(code), code, "RFC 5321 §4.2: 2yz..5yz, second digit 0..5");
        var lines = SplitLines(text);
        return new SmtpReply(code, lines, FindEnhanced(code / 100, lines));
    }

    /// <summary>A reply as a client library reports it (code and text). A code that is not an SMTP reply code (a broken
    /// server) becomes a missing reply carrying the raw text, classed transient.</summary>
    public static SmtpReply FromWire(int code, string? text) =>
        code is >= 200 and <= 599 && (code / 10) % 10 <= 5 ? Create(code, text)
            : NoReply($"{code.ToString("000", CultureInfo.InvariantCulture)} {text}".TrimEnd());

    /// <summary>A reply made here, not received (vendor <c>'000'</c>): <c>Local("4.4.2", "connection lost")</c>.</summary>
    public static SmtpReply Local(string enhancedStatus, string text) =>
        NoReply($"{enhancedStatus} {text}", EnhancedStatusCode.TryParse(enhancedStatus, out var st) ? st : null);

    /// <summary>No reply was received (vendor <c>'000'</c>): e.g. <c>timeout</c>, or a DNS error with 5.1.2.</summary>
    public static SmtpReply NoReply(string reason, EnhancedStatusCode? status = null) =>
        new(0, SplitLines(reason), status);

    /// <summary>Parses raw reply lines: <c>250-first</c> … <c>250 last</c> (CRLF or LF). All lines must carry the same code;
    /// every line but the last has '-' after the code (RFC 5321 §4.2.1).</summary>
    public static bool TryParse(string raw, out SmtpReply reply, out string error)
    {
        reply = null!;
        error = "";
        var rawLines = raw.Split('\n');
        var count = rawLines.Length;
        while (count > 0 && rawLines[count - 1].TrimEnd('\r').Length == 0) count--; // trailing CRLF
        if (count == 0) { error = "empty reply"; return false; }
        var code = -1;
        var lines = new string[count];
        for (var i = 0; i < count; i++)
        {
            var line = rawLines[i].TrimEnd('\r');
            if (line.Length < 3 || !char.IsAsciiDigit(line[0]) || !char.IsAsciiDigit(line[1]) || !char.IsAsciiDigit(line[2]))
            {
                error = $"line {i + 1} does not start with a three-digit code";
                return false;
            }
            var c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
            if (code == -1) code = c;
            else if (c != code) { error = $"line {i + 1} has code {c}, expected {code}"; return false; }
            var last = i == count - 1;
            var sep = line.Length > 3 ? line[3] : ' ';
            if (!last && sep != '-') { error = $"line {i + 1} is not marked as continued ('-') but more lines follow"; return false; }
            if (last && sep == '-') { error = "the last line is marked as continued ('-')"; return false; }
            if (sep is not ('-' or ' ')) { error = $"line {i + 1}: expected ' ' or '-' after the code"; return false; }
            lines[i] = line.Length > 4 ? line[4..] : "";
        }
        if (code is < 200 or > 599 || (code / 10) % 10 > 5) { error = $"code {code} is not an SMTP reply code (2yz..5yz)"; return false; }
        reply = new SmtpReply(code, lines, FindEnhanced(code / 100, lines));
        return true;
    }

    public static SmtpReply Parse(string raw) =>
        TryParse(raw, out var r, out var e) ? r : throw new FormatException($"Invalid SMTP reply: {e}");

    /// <summary>The reply as sent on the wire (CRLF line ends).</summary>
    public string ToWireFormat()
    {
        var sb = new StringBuilder();
        var code = Code.ToString("000", CultureInfo.InvariantCulture);
        for (var i = 0; i < Lines.Count; i++)
            sb.Append(code).Append(i < Lines.Count - 1 ? '-' : ' ').Append(Lines[i]).Append("\r\n");
        return sb.ToString();
    }

    public override string ToString() => SmtpReplyFormatter.FormatReply(this);

    public bool Equals(SmtpReply? other) =>
        other is not null && Code == other.Code && Enhanced == other.Enhanced && Lines.SequenceEqual(other.Lines);

    public override int GetHashCode() => HashCode.Combine(Code, Enhanced, Lines.Count);

    private static string[] SplitLines(string? text)
    {
        if (string.IsNullOrEmpty(text)) return [""];
        var parts = text.Replace("\r\n", "\n").TrimEnd('\n').Split('\n');
        return parts.Select(p => p.TrimEnd('\r')).ToArray();
    }

    private static EnhancedStatusCode? FindEnhanced(int replyClass, IReadOnlyList<string> lines) =>
        // RFC 2034 §4: the class of the enhanced code must match the first digit of the reply; otherwise ignore it.
        lines.Count > 0 && EnhancedStatusCode.TryParseAtStart(lines[0], out var c, out _) && c.Class == replyClass ? c : null;
}
