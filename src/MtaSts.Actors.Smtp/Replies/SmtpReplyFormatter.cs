using System.Globalization;
using System.Text;

namespace MtaSts.Actors.Smtp.Replies;

/// <summary>
/// Vendor mail_logs shapes (research §1.6), kept so operators' greps and Splunk extractions keep working:
/// <c>4.3.2 - Not accepting messages at this time ('421', ['4.3.2 try again later'])</c> and, with no reply,
/// <c>5.4.7 - Delivery expired (message too old) ('000', ['timeout'])</c>. The reply lines are written as a Python
/// list of strings, as the vendor's logs are.
/// </summary>
public static class SmtpReplyFormatter
{
    /// <summary><c>&lt;status&gt; - &lt;description&gt; ('&lt;code&gt;', [&lt;lines&gt;])</c>. The status is
    /// <paramref name="status"/> if given, else the reply's enhanced code, else derived from its class.</summary>
    public static string Format(SmtpReply reply, EnhancedStatusCode? status = null)
    {
        var s = status ?? reply.Status;
        return $"{s} - {s.Description} {FormatReply(reply)}";
    }

    /// <summary>A local outcome without an SMTP reply (vendor <c>'000'</c>: timeout, connection error, DNS, MTA-STS,
    /// expiry): <c>4.4.2 - Connection error ('000', ['connection reset'])</c>. The description defaults to the status's
    /// RFC 3463 one.</summary>
    public static string NoReply(string status, string? reason, string? description = null)
    {
        if (!EnhancedStatusCode.TryParse(status, out var code))
            throw new ArgumentException($"'{status}' is not an RFC 3463 status code", nameof(status));
        return $"{code} - {description ?? code.Description} {FormatReply(SmtpReply.NoReply(reason ?? "", code))}";
    }

    /// <summary><c>('421', ['4.3.2 try again later'])</c>; <c>('000', ['timeout'])</c> when there was no reply.</summary>
    public static string FormatReply(SmtpReply reply)
    {
        var sb = new StringBuilder("('");
        sb.Append(reply.Code.ToString("000", CultureInfo.InvariantCulture)).Append("', [");
        for (var i = 0; i < reply.Lines.Count; i++)
        {
            if (i > 0) sb.Append(", ");
            AppendPythonString(sb, reply.Lines[i]);
        }
        return sb.Append("])").ToString();
    }

    // Python repr(): single quotes unless the text holds a ' and no "; backslash, quote and control characters escaped.
    private static void AppendPythonString(StringBuilder sb, string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '\r': sb.Append(@"\r"); break;
                case '\n': sb.Append(@"\n"); break;
                case '\t': sb.Append(@"\t"); break;
                default:
                    if (c == quote) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append(@"\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append(quote);
    }
}
