using MimeKit;
using MimeKit.Utils;

namespace MtaSts.Actors.TlsRpt;

/// <summary>The RFC 8460 §5.3 report message: multipart/report; report-type="tlsrpt", a short text part and the
/// gzip report as an <c>application/tlsrpt+gzip</c> attachment named per §5.1.</summary>
public static class TlsRptMessage
{
    public static byte[] Build(TlsRptReport report, string submitter, string from, string to, DateTimeOffset now)
    {
        var msg = new MimeMessage();
        msg.From.Add(MailboxAddress.Parse(from));
        msg.To.Add(MailboxAddress.Parse(to));
        msg.Date = now;
        msg.MessageId = MimeUtils.GenerateMessageId(submitter);
        msg.Subject = $"Report Domain: {report.PolicyDomain} Submitter: {submitter} Report-ID: <{report.ReportId}>";
        msg.Headers.Add("TLS-Report-Domain", report.PolicyDomain);
        msg.Headers.Add("TLS-Report-Submitter", submitter);
        // RFC 8689 §5: the report must get through despite TLS problems of the report's own delivery (RFC 8460 §3).
        msg.Headers.Add("TLS-Required", "No");
        msg.Headers.Add("Auto-Submitted", "auto-generated");

        var text = new TextPart("plain")
        {
            Text = $"This is an aggregate TLS report (RFC 8460) from {report.OrganizationName} for {report.PolicyDomain},\r\n" +
                   $"covering {report.Start:yyyy-MM-dd HH:mm:ss}Z to {report.End:yyyy-MM-dd HH:mm:ss}Z: {report.TotalSessions} sessions.\r\n",
        };
        var attachment = new MimePart("application", "tlsrpt+gzip")
        {
            Content = new MimeContent(new MemoryStream(report.ToGzip())),
            ContentDisposition = new ContentDisposition(ContentDisposition.Attachment) { FileName = report.FileName(submitter) },
            ContentTransferEncoding = ContentEncoding.Base64,
        };
        var multipart = new Multipart("report") { text, attachment };
        multipart.ContentType.Parameters.Add("report-type", "tlsrpt");
        msg.Body = multipart;

        using var ms = new MemoryStream();
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        msg.WriteTo(options, ms);
        return ms.ToArray();
    }
}
