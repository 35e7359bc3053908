using System.Globalization;
using System.Text;
using MtaSts.Actors.Smtp.Replies;

namespace MtaSts.Actors.Smtp.Dsn;

/// <summary>
/// Composes a delivery status notification: RFC 6522 <c>multipart/report; report-type=delivery-status</c> with
/// (1) a human-readable text/plain part, (2) an RFC 3464 <c>message/delivery-status</c> part and (3) the returned
/// content — <c>message/rfc822</c> (whole message) or <c>text/rfc822-headers</c> — chosen by <see cref="DsnRules.ReturnedContent"/>.
/// Output is CRLF bytes, deterministic for a given request (Message-ID and boundary derive from MID and date), so a
/// re-run after a crash produces the same DSN. Remote text is reduced to printable ASCII: a remote server must not be
/// able to inject header lines or 8-bit bytes into a report field.
/// </summary>
public sealed class DsnBuilder(DsnOptions? options = null)
{
    private const string Crlf = "\r\n";
    private readonly DsnOptions _options = options ?? new DsnOptions();

    public DsnMessage Build(DsnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Recipients.Count == 0) throw new ArgumentException("a DSN needs at least one recipient report", nameof(request));
        var env = request.Envelope;
        if (string.IsNullOrEmpty(env.ReversePath) || env.ReversePath == "<>")
            throw new ArgumentException("no DSN is ever sent to the null reverse-path (RFC 5321 §4.5.5)", nameof(request));

        var original = request.OriginalMessage.Span;
        var anyFailed = request.Recipients.Any(r => r.Action == DsnAction.Failed);
        var returned = DsnRules.ReturnedContent(env.Ret, original.Length, anyFailed, _options.MaxFullReturnBytes);
        var returnedBytes = returned == DsnReturnedContent.FullMessage ? original : HeaderSection(original);
        var eightBit = returnedBytes.ContainsAnyInRange((byte)0x80, (byte)0xff);

        var host = Ascii(request.ReportingMta);
        var stamp = request.Now.UtcTicks.ToString(CultureInfo.InvariantCulture);
        var messageId = $"<{request.Mid}.{stamp}.dsn@{host}>";
        var boundary = Boundary(request.Mid, stamp, original);
        var utf8Address = !Ascii(env.ReversePath).Equals(env.ReversePath, StringComparison.Ordinal);

        var sb = new StringBuilder(4096);
        // RFC 5322 header; Auto-Submitted per RFC 3834 §5 so that auto-responders stay quiet.
        Header(sb, "From", $"{_options.FromDisplayName} <{_options.FromLocalPart}@{host}>");
        Header(sb, "To", $"<{env.ReversePath}>");
        Header(sb, "Subject", Subject(request.Recipients));
        Header(sb, "Date", FormatDate(request.Now));
        Header(sb, "Message-ID", messageId);
        Header(sb, "Auto-Submitted", "auto-replied");
        Header(sb, "MIME-Version", "1.0");
        Header(sb, "Content-Type", $"multipart/report; report-type=delivery-status;{Crlf} boundary=\"{boundary}\"");
        sb.Append(Crlf).Append("This is a MIME-encapsulated message.").Append(Crlf).Append(Crlf);

        // Part 1: human-readable (RFC 6522 §3: first part of a multipart/report).
        var human = HumanText(request, host);
        var humanIsAscii = Ascii(human).Equals(human, StringComparison.Ordinal);
        sb.Append("--").Append(boundary).Append(Crlf);
        Header(sb, "Content-Type", humanIsAscii ? "text/plain; charset=us-ascii" : "text/plain; charset=utf-8");
        Header(sb, "Content-Transfer-Encoding", humanIsAscii ? "7bit" : "8bit");
        sb.Append(Crlf).Append(human);

        // Part 2: message/delivery-status (RFC 3464 §2.1: per-message fields, blank line, per-recipient groups).
        sb.Append("--").Append(boundary).Append(Crlf);
        Header(sb, "Content-Type", "message/delivery-status");
        sb.Append(Crlf);
        Header(sb, "Reporting-MTA", $"dns; {host}");
        if (!string.IsNullOrEmpty(env.EnvId)) Header(sb, "Original-Envelope-Id", Ascii(env.EnvId));
        if (!string.IsNullOrEmpty(env.ClientHelo)) Header(sb, "Received-From-MTA", $"dns; {Ascii(env.ClientHelo)}");
        Header(sb, "Arrival-Date", FormatDate(env.ReceivedAt));
        foreach (var r in request.Recipients)
        {
            sb.Append(Crlf);
            if (OriginalRecipient(r.Recipient.OriginalRecipient) is { } orcpt) Header(sb, "Original-Recipient", orcpt);
            Header(sb, "Final-Recipient", $"rfc822; {r.Recipient.Address}");
            Header(sb, "Action", ActionText(r.Action));
            Header(sb, "Status", r.EffectiveStatus.ToString());
            if (!string.IsNullOrEmpty(r.RemoteMta)) Header(sb, "Remote-MTA", $"dns; {Ascii(r.RemoteMta)}");
            if (r.RemoteReply is { } reply)
                Header(sb, "Diagnostic-Code", reply.IsNoReply ? $"X-MtaSts; {Ascii(reply.Text)}" : $"smtp; {Ascii(reply.DiagnosticText)}");
            if (r.LastAttemptAt is { } last) Header(sb, "Last-Attempt-Date", FormatDate(last));
            if (r.Action == DsnAction.Delayed && r.WillRetryUntil is { } until) Header(sb, "Will-Retry-Until", FormatDate(until));
        }

        // Part 3: the returned content.
        sb.Append(Crlf).Append("--").Append(boundary).Append(Crlf);
        if (returned == DsnReturnedContent.FullMessage)
        {
            Header(sb, "Content-Type", "message/rfc822");
            // RFC 2046 §5.2.1: message/rfc822 may only be 7bit, 8bit or binary.
            Header(sb, "Content-Transfer-Encoding", eightBit ? "8bit" : "7bit");
        }
        else
        {
            Header(sb, "Content-Type", "text/rfc822-headers");
            if (eightBit) Header(sb, "Content-Transfer-Encoding", "8bit");
        }
        sb.Append(Crlf);

        var head = Encoding.UTF8.GetBytes(sb.ToString());
        var tail = Encoding.ASCII.GetBytes($"{(EndsWithNewline(returnedBytes) ? "" : Crlf)}--{boundary}--{Crlf}");
        var content = new byte[head.Length + returnedBytes.Length + tail.Length];
        head.CopyTo(content, 0);
        returnedBytes.CopyTo(content.AsSpan(head.Length));
        tail.CopyTo(content, head.Length + returnedBytes.Length);

        return new DsnMessage("", env.ReversePath, content, messageId, returned, eightBit, utf8Address);
    }

    /// <summary>RFC 5322 §3.3 date-time: <c>Thu, 01 Jan 2026 12:00:00 +0000</c>.</summary>
    public static string FormatDate(DateTimeOffset t)
    {
        var offset = t.Offset;
        var sign = offset < TimeSpan.Zero ? '-' : '+';
        var abs = offset.Duration();
        return t.ToString("ddd, dd MMM yyyy HH:mm:ss ", CultureInfo.InvariantCulture) +
               string.Create(CultureInfo.InvariantCulture, $"{sign}{abs.Hours:00}{abs.Minutes:00}");
    }

    private static string ActionText(DsnAction a) => a switch
    {
        DsnAction.Failed => "failed",
        DsnAction.Delayed => "delayed",
        DsnAction.Delivered => "delivered",
        DsnAction.Relayed => "relayed",
        _ => "expanded",
    };

    private static string Subject(IReadOnlyList<DsnRecipientReport> reports) =>
        reports.Any(r => r.Action == DsnAction.Failed) ? "Undelivered Mail Returned to Sender"
        : reports.Any(r => r.Action == DsnAction.Delayed) ? "Delayed Mail (still being retried)"
        : "Successful Mail Delivery Report";

    private static string HumanText(DsnRequest request, string host)
    {
        var sb = new StringBuilder();
        sb.Append("This is the mail system at host ").Append(host).Append('.').Append(Crlf).Append(Crlf);
        void Section(DsnAction[] actions, string intro)
        {
            var group = request.Recipients.Where(r => actions.Contains(r.Action)).ToList();
            if (group.Count == 0) return;
            sb.Append(intro).Append(Crlf).Append(Crlf);
            foreach (var r in group)
            {
                var s = r.EffectiveStatus;
                sb.Append('<').Append(r.Recipient.Address).Append(">: ").Append(s).Append(" - ").Append(s.Description);
                if (r.RemoteReply is { } reply) sb.Append(Crlf).Append("    ").Append(Ascii(reply.DiagnosticText));
                if (!string.IsNullOrEmpty(r.RemoteMta)) sb.Append(Crlf).Append("    (remote host ").Append(Ascii(r.RemoteMta)).Append(')');
                if (r.Action == DsnAction.Delayed && r.WillRetryUntil is { } until)
                    sb.Append(Crlf).Append("    The mail system will keep trying until ").Append(FormatDate(until)).Append('.');
                sb.Append(Crlf);
            }
            sb.Append(Crlf);
        }
        Section([DsnAction.Failed], "Your message could not be delivered to the following recipients. This is a permanent error; it will not be retried.");
        Section([DsnAction.Delayed], "Your message has not yet been delivered to the following recipients. No action is needed: the mail system is still trying.");
        Section([DsnAction.Delivered, DsnAction.Relayed, DsnAction.Expanded], "Your message was delivered to the following recipients (or handed to a system that does not report delivery).");
        return sb.ToString();
    }

    /// <summary>ORCPT is stored as <c>addr-type;address</c> (RFC 3461 §4.2); RFC 3464 §2.3.1 writes it the same way.</summary>
    private static string? OriginalRecipient(string? orcpt)
    {
        if (string.IsNullOrWhiteSpace(orcpt)) return null;
        var semi = orcpt.IndexOf(';');
        return semi <= 0 ? $"rfc822; {Ascii(orcpt.Trim())}" : $"{Ascii(orcpt[..semi].Trim())}; {Ascii(orcpt[(semi + 1)..].Trim())}";
    }

    /// <summary>The header section including the CRLF that ends the last header (not the blank line).</summary>
    internal static ReadOnlySpan<byte> HeaderSection(ReadOnlySpan<byte> message)
    {
        if (message.StartsWith("\r\n"u8) || message.StartsWith("\n"u8)) return [];
        var crlf = message.IndexOf("\r\n\r\n"u8);
        var lf = message.IndexOf("\n\n"u8);
        if (crlf >= 0 && (lf < 0 || crlf < lf)) return message[..(crlf + 2)];
        if (lf >= 0) return message[..(lf + 1)];
        return message;
    }

    private static bool EndsWithNewline(ReadOnlySpan<byte> s) => s.Length == 0 || s[^1] == (byte)'\n';

    private static string Boundary(long mid, string stamp, ReadOnlySpan<byte> original)
    {
        // RFC 2046 §5.1.1: the boundary must not occur in the encapsulated content.
        for (var n = 0; ; n++)
        {
            var b = $"=_dsn_{mid}_{stamp}" + (n == 0 ? "" : "_" + n.ToString(CultureInfo.InvariantCulture));
            if (original.IndexOf(Encoding.ASCII.GetBytes(b)) < 0) return b;
        }
    }

    /// <summary>Printable ASCII only: CR, LF and other controls become spaces, other characters '?'.</summary>
    private static string Ascii(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s) sb.Append(c is >= ' ' and < (char)0x7f ? c : c < ' ' || c == 0x7f ? ' ' : '?');
        return sb.ToString();
    }

    /// <summary>Writes <c>Name: value</c>, folding at spaces to keep lines near 78 characters (RFC 5322 §2.2.3).</summary>
    private static void Header(StringBuilder sb, string name, string value)
    {
        var line = $"{name}: {value}";
        if (line.Length <= 78 || line.Contains('\n')) { sb.Append(line).Append(Crlf); return; }
        var start = 0;
        while (line.Length - start > 78)
        {
            var cut = line.LastIndexOf(' ', start + 78, 78 - 1);
            if (cut <= start + name.Length + 1) cut = line.IndexOf(' ', start + 78);
            if (cut < 0) break;
            sb.Append(line, start, cut - start).Append(Crlf);
            start = cut; // the space begins the continuation line
        }
        sb.Append(line, start, line.Length - start).Append(Crlf);
    }
}
