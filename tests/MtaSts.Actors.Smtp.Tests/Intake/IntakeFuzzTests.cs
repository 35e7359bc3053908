using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>
/// Seeded random command/DATA byte streams against the real listener over sockets, for a bounded time (10 s, 2 concurrent sessions: it shares the box with the other test assemblies). Invariants:
/// no exception escapes a session, every reply line is well formed, no unspooled bytes are left behind, and the
/// listener still serves a normal client afterwards. A failure names its seed (rerun with it to reproduce).
/// </summary>
public sealed partial class IntakeFuzzTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(10);

    [GeneratedRegex(@"^[2-5][0-9][0-9]([ -].*)?$")]
    private static partial Regex ReplyLine();

    private static readonly string[] Commands =
    [
        "EHLO fuzz.test", "HELO fuzz.test", "MAIL FROM:<a@x.test>", "MAIL FROM:<> SIZE=100 BODY=8BITMIME",
        "RCPT TO:<b@y.test>", "RCPT TO:<c@z.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@z.test", "DATA", "RSET", "NOOP",
        "QUIT", "VRFY x", "HELP", "STARTTLS", "AUTH PLAIN", "AUTH LOGIN", "BDAT 10 LAST", "MAIL FROM:<\"q u\"@x.test> SMTPUTF8",
        "RCPT TO:<ü@ÿ.test>", "MAIL FROM:a@x.test", "RCPT", "EHLO", "DATA x", ".", "..", "MAIL FROM:<a@x.test> SIZE=99999999999",
    ];

    private static readonly string[] Fragments =
    [
        "\r\n", "\n", "\r", "\0", "\r\n.\r\n", "\n.\n", "\r.\r", "\r\n\r.\r\n", ".\r\n", "..\r\n", "\xff\xfe", "Subject: x\r\n",
        "é", "\t", " ", ":", "<>", "\x1b[2J", "=?utf-8?b?AA==?=",
    ];

    private static byte[] Stream(Random rng)
    {
        var sb = new StringBuilder();
        int parts = rng.Next(5, 120);
        for (int i = 0; i < parts; i++)
        {
            switch (rng.Next(10))
            {
                case < 5: sb.Append(Commands[rng.Next(Commands.Length)]).Append(rng.Next(6) == 0 ? "\n" : "\r\n"); break;
                case < 8: sb.Append(Fragments[rng.Next(Fragments.Length)]); break;
                case 8: sb.Append(new string((char)rng.Next(32, 127), rng.Next(1, rng.Next(3) == 0 ? 3000 : 80))); break;
                default:
                    for (int k = rng.Next(1, 40); k > 0; k--) sb.Append((char)rng.Next(0, 256));
                    break;
            }
        }
        return Encoding.Latin1.GetBytes(sb.ToString());
    }

    [Fact]
    public async Task Random_byte_streams_never_break_a_session_or_a_reply()
    {
        await using var h = await new IntakeHarness(o => o with
        {
            MaxMessageSize = 64 * 1024, BodyMemoryLimit = 4096, MaxDataInFlight = 1024 * 1024,
            CommandTimeout = TimeSpan.FromSeconds(3), DataTimeout = TimeSpan.FromSeconds(3), MaxErrors = 50,
            RelayClientLimits = ClientLimits.RelayDefault with { ErrorDelay = TimeSpan.Zero },
            BareLineEndings = BareLineEndingPolicy.Normalize,
        }).StartAsync();
        var deadline = DateTime.UtcNow + Budget;
        int seed = Environment.GetEnvironmentVariable("INTAKE_FUZZ_SEED") is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : 0;
        int sessions = 0;
        var workers = Enumerable.Range(0, 2).Select(async w =>
        {
            for (int n = w; DateTime.UtcNow < deadline; n += 2)
            {
                await OneSessionAsync(h.Port, seed + n);
                Interlocked.Increment(ref sessions);
            }
        });
        await Task.WhenAll(workers);

        Assert.True(sessions > 20, $"only {sessions} sessions ran");
        // An exception escaped a session (icid_failed) or anything else critical happened.
        var critical = h.Entries.Where(e => e.Level == MailLogLevel.Critical).Select(e => e.Text).ToArray();
        Assert.True(critical.Length == 0, string.Join("\n", critical.Take(5)));
        // Every session ended; nothing it reserved is still counted.
        var settle = DateTime.UtcNow + IntakeHarness.Generous;
        while ((h.Listener.ActiveSessions > 0 || h.Listener.DataInFlight > 0) && DateTime.UtcNow < settle) await Task.Delay(50);
        Assert.Equal(0, h.Listener.DataInFlight);
        Assert.Equal(0, h.Listener.ActiveSessions);
        Assert.Empty(Directory.GetFiles(h.Spool.SpillDirectory is var d && Directory.Exists(d) ? d : h.Dir, "body-*.tmp"));
        // Still serving.
        await using var c = await h.ConnectAsync();
        Assert.Equal(250, (await c.CommandAsync("EHLO after.fuzz")).Code);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test>")).Code);
    }

    private static async Task OneSessionAsync(int port, int seed)
    {
        var rng = new Random(seed);
        var bytes = Stream(rng);
        using var tcp = new TcpClient(AddressFamily.InterNetwork);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await tcp.ConnectAsync(IPAddress.Loopback, port, cts.Token);
        var net = tcp.GetStream();
        var reading = ReadRepliesAsync(net, seed, cts.Token);
        try
        {
            for (int i = 0; i < bytes.Length;)
            {
                int chunk = Math.Min(bytes.Length - i, rng.Next(1, 4096));
                await net.WriteAsync(bytes.AsMemory(i, chunk), cts.Token);
                i += chunk;
            }
            tcp.Client.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is IOException or SocketException) { } // the server may close first (QUIT, 421)
        await reading;
    }

    private static async Task ReadRepliesAsync(NetworkStream net, int seed, CancellationToken ct)
    {
        var pending = new List<byte>();
        var buf = new byte[8192];
        string? multiCode = null;
        while (true)
        {
            int n;
            try { n = await net.ReadAsync(buf, ct); }
            catch (Exception e) when (e is IOException or SocketException) { return; }
            catch (OperationCanceledException) { Assert.Fail($"seed {seed}: the server neither answered nor closed within 30 s"); return; }
            if (n == 0) return;
            pending.AddRange(buf.AsSpan(0, n));
            int lf;
            while ((lf = pending.IndexOf((byte)'\n')) >= 0)
            {
                Assert.True(lf > 0 && pending[lf - 1] == (byte)'\r', $"seed {seed}: reply line not terminated by CRLF");
                var line = Encoding.UTF8.GetString(pending.GetRange(0, lf - 1).ToArray());
                pending.RemoveRange(0, lf + 1);
                Assert.Matches(ReplyLine(), line);
                Assert.DoesNotContain('\r', line);
                if (multiCode is not null) Assert.True(line.StartsWith(multiCode, StringComparison.Ordinal), $"seed {seed}: multi-line reply changed code: {line}");
                multiCode = line.Length > 3 && line[3] == '-' ? line[..3] : null;
            }
        }
    }
}
