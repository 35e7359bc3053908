using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MtaSts.Actors.TestInfra.Smtp;

/// <summary>One message to a gateway's SMTP listener over a raw connection (no client library: the tests see every
/// reply line as the gateway wrote it). Multi-line replies are read whole; the last line is the answer.</summary>
public static class SmtpSubmission
{
    public const string Queued = "250 2.0.0 Ok: queued as ";

    /// <summary>Greeting, EHLO, MAIL, RCPT, DATA and <paramref name="content"/> (without the final dot): the first 4xx or
    /// 5xx reply, or the reply to the content; null code when the session ended without one.</summary>
    public static async Task<(int? Code, string Line)> SendAsync(int port, string helo, string from, string to, string content, CancellationToken ct)
    {
        using var tcp = new TcpClient(AddressFamily.InterNetwork);
        await tcp.ConnectAsync(IPAddress.Loopback, port, ct);
        var s = tcp.GetStream();
        using var r = new StreamReader(s, Encoding.ASCII);
        async Task<string> Reply()
        {
            string line;
            do line = await r.ReadLineAsync(ct) ?? throw new IOException("closed");
            while (line.Length > 3 && line[3] == '-');
            return line;
        }
        async Task<string> Cmd(string line)
        {
            await s.WriteAsync(Encoding.ASCII.GetBytes(line + "\r\n"), ct);
            return await Reply();
        }
        var answer = "";
        foreach (var step in new Func<Task<string>>[]
        {
            Reply, () => Cmd("EHLO " + helo), () => Cmd($"MAIL FROM:<{from}>"), () => Cmd($"RCPT TO:<{to}>"), () => Cmd("DATA"),
            () => Cmd(content + "\r\n."),
        })
        {
            answer = await step();
            if (answer[0] is '4' or '5') return (int.Parse(answer[..3], CultureInfo.InvariantCulture), answer);
        }
        try { await s.WriteAsync("QUIT\r\n"u8.ToArray(), ct); }
        catch (IOException) { } // the answer is in; a closed connection does not change it
        return answer.StartsWith("250", StringComparison.Ordinal) ? (250, answer) : (null, answer);
    }

    /// <summary>Sends one message that must be accepted; its MID (from <c>250 2.0.0 Ok: queued as MID</c>).</summary>
    public static async Task<long> SubmitAsync(int port, string helo, string from, string to, string content)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (_, line) = await SendAsync(port, helo, from, to, content, cts.Token);
        if (!line.StartsWith(Queued, StringComparison.Ordinal)) throw new InvalidOperationException($"not accepted: {line}");
        return long.Parse(line[Queued.Length..], CultureInfo.InvariantCulture);
    }
}
