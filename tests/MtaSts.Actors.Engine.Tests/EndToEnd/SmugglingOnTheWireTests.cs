using System.Net.Sockets;
using System.Text;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.EndToEnd;

/// <summary>
/// SMTP smuggling, end to end: a client submits every end-of-data lookalike to a real gateway, which relays to a
/// receiver that keeps the raw DATA bytes. Whatever the client sent, the next hop sees CRLF line endings only, no NUL,
/// no bare CR, and no "." line before the real end — so no receiver, however lenient, can find a second message.
/// </summary>
public sealed class SmugglingOnTheWireTests
{
    private static readonly string[] Lookalikes =
    [
        "\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\r\n", "\r\n.\r", "\n.\r", "\r\n\r.\r\n", "\r\n.\r\r\n",
        "\r\n\0.\r\n", "\r\n.\0\r\n", "\n..\n", "\r\r\n.\r\r\n",
    ];

    [Theory]
    [InlineData("normalize")]
    [InlineData("reject")]
    public async Task The_next_hop_never_sees_a_lookalike_end_of_data(string policy)
    {
        await using var mx = new RawCaptureReceiver();
        await using var gw = await GatewayFixture.StartAsync(mx.Port, $"mtasts.listener.bare-line-endings = {policy}");
        foreach (var lookalike in Lookalikes)
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(gw.Smtp);
            var s = tcp.GetStream();
            var payload = "EHLO client.test\r\nMAIL FROM:<app@sender.test>\r\nRCPT TO:<r@dest.test>\r\nDATA\r\n" +
                          "Subject: outer\r\n\r\nhello" + lookalike +
                          "MAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\nSubject: spoofed\r\n\r\nevil\r\n.\r\nQUIT\r\n";
            await s.WriteAsync(Encoding.Latin1.GetBytes(payload));
            var replies = await ReadAllAsync(s);
            Assert.Contains("221 ", replies); // the session stayed in sync to the end
        }
        // Wait until the gateway has delivered everything it accepted.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (gw.Gateway.Spool.Count > 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(0, gw.Gateway.Spool.Count);
        Assert.NotEmpty(mx.Data);
        foreach (var raw in mx.Data)
        {
            var text = Encoding.Latin1.GetString(raw);
            Assert.EndsWith("\r\n.\r\n", text);
            var inner = raw.AsSpan(0, raw.Length - 3); // up to and including the CRLF before the final "."
            for (int i = 0; i < inner.Length; i++)
            {
                Assert.True(inner[i] != 0, $"NUL on the wire at {i}: {Show(text)}");
                if (inner[i] == (byte)'\r') Assert.True(i + 1 < inner.Length && inner[i + 1] == (byte)'\n', $"bare CR at {i}: {Show(text)}");
                if (inner[i] == (byte)'\n') Assert.True(i > 0 && inner[i - 1] == (byte)'\r', $"bare LF at {i}: {Show(text)}");
            }
            // Before the real end, no line is "." (every content line starting with "." is stuffed).
            var lines = Encoding.Latin1.GetString(inner).Split("\r\n");
            Assert.DoesNotContain(".", lines[..^1]);
        }
        if (policy == "reject")
            Assert.DoesNotContain(mx.Data, d => Encoding.Latin1.GetString(d).Contains("Subject: outer"));
    }

    private static string Show(string s) => s.Replace("\r", "\\r").Replace("\n", "\\n").Replace("\0", "\\0");

    private static async Task<string> ReadAllAsync(NetworkStream s)
    {
        var sb = new StringBuilder();
        var buf = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            int n;
            while ((n = await s.ReadAsync(buf, cts.Token)) > 0) sb.Append(Encoding.Latin1.GetString(buf, 0, n));
        }
        catch (Exception e) when (e is IOException or OperationCanceledException) { }
        return sb.ToString();
    }
}
