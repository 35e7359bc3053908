using System.Collections.Concurrent;
using System.Net;
using System.Text.RegularExpressions;
using MailKit.Net.Smtp;
using MimeKit;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.EndToEnd;

/// <summary>
/// A real gateway (listener, spool, SQLite journal, sharding, outbound SMTP) on loopback, configured from the shipped
/// HOCON plus a per-test override, with its operator log captured in memory.
/// </summary>
public sealed class GatewayFixture : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _lines = new();

    private GatewayFixture(string dataDir) => DataDir = dataDir;

    public string DataDir { get; }
    public Gateway Gateway { get; private set; } = null!;
    public IPEndPoint Smtp => Gateway.SmtpEndpoints[0];
    public IReadOnlyList<string> Lines => _lines.ToArray();

    /// <summary>Starts a gateway whose every destination is delivered to <paramref name="mxPort"/> on 127.0.0.1.</summary>
    public static Task<GatewayFixture> StartAsync(int mxPort, string extraHocon = "", string? dataDir = null) =>
        StartAsync($"\"*\" = \"127.0.0.1:{mxPort}\"", extraHocon, dataDir);

    /// <param name="overrides">Optional component overrides (DNS, policy HTTPS port, tuning); the log writer is
    /// always the fixture's in-memory one.</param>
    /// <param name="extraFiles">Config files loaded after the shipped defaults (e.g. hocon/cluster-postgres.conf),
    /// before the fixture's override; kept for restarts.</param>
    public static async Task<GatewayFixture> StartAsync(string mxOverride, string extraHocon, string? dataDir,
        GatewayOverrides? overrides = null, IReadOnlyList<string>? extraFiles = null)
    {
        dataDir ??= Path.Combine(Path.GetTempPath(), "mtasts-e2e-" + Guid.NewGuid().ToString("N"));
        var f = new GatewayFixture(dataDir) { ExtraFiles = extraFiles ?? [] };
        await f.RestartAsync(mxOverride, extraHocon, overrides).ConfigureAwait(false);
        return f;
    }

    /// <summary>Config files loaded after the shipped defaults on every (re)start.</summary>
    public IReadOnlyList<string> ExtraFiles { get; init; } = [];

    /// <summary>(Re)starts on the same data directory: the restart path of a real process.</summary>
    public async Task RestartAsync(string mxOverride, string extraHocon, GatewayOverrides? overrides = null)
    {
        var hocon = $$"""
            mtasts {
              data-dir = "{{DataDir.Replace("\\", "/")}}"
              hostname = "gw.test.invalid"
              listener.endpoints = ["127.0.0.1:0"]
              delivery {
                mx-override { {{mxOverride}} }
                connection-idle-time = 200ms
                connect-timeout = 5s
              }
              log.text = ""
            }
            mtasts.destinations.default.tls-support = none
            # The domains exist only in mx-override (no DNS to ask for a policy): MTA-STS, on by default, is off here;
            # the MTA-STS, TLS-RPT and DANE tests turn it on per destination with their lab's DNS.
            mtasts.destinations.default.mta-sts = off
            mtasts.bounce-profiles.default { initial-retry-interval = 1s
              max-retry-interval = 2s
              retry-jitter = 0 }
            {{extraHocon}}
            """;
        var config = GatewayConfig.Load(GatewayConfig.DefaultFiles().Concat(ExtraFiles), hocon);
        var writer = new LineWriter(_lines);
        Gateway = await Gateway.StartAsync(config, (overrides ?? new GatewayOverrides()) with { LogWriter = writer }).ConfigureAwait(false);
    }

    public async Task StopAsync() => await Gateway.DisposeAsync().ConfigureAwait(false);

    /// <summary>Submits one message over SMTP (MailKit) and returns once the gateway answered 250.</summary>
    public async Task SendAsync(string from, IEnumerable<string> to, string subject, string body = "hello")
    {
        var msg = new MimeMessage();
        msg.From.Add(MailboxAddress.Parse(from.Length == 0 ? "nobody@test.invalid" : from));
        foreach (var r in to) msg.To.Add(MailboxAddress.Parse(r));
        msg.Subject = subject;
        msg.Body = new TextPart("plain") { Text = body };
        using var client = new SmtpClient();
        await client.ConnectAsync(Smtp.Address.ToString(), Smtp.Port, MailKit.Security.SecureSocketOptions.None).ConfigureAwait(false);
        var sender = new MailboxAddress("", from);
        await client.SendAsync(msg, sender, msg.To.Mailboxes).ConfigureAwait(false);
        await client.DisconnectAsync(true).ConfigureAwait(false);
    }

    /// <summary>Outbound connections open at once as the gateway lived them ("New SMTP DCID" after connect, "DCID n
    /// close"): parked sessions count until they close.</summary>
    public static int PeakOpen(IEnumerable<string> lines)
    {
        var open = new HashSet<string>();
        var peak = 0;
        foreach (var line in lines)
        {
            if (Regex.Match(line, @"New SMTP DCID (\d+)") is { Success: true } n) open.Add(n.Groups[1].Value);
            else if (Regex.Match(line, @"DCID (\d+) close") is { Success: true } c) open.Remove(c.Groups[1].Value);
            peak = Math.Max(peak, open.Count);
        }
        return peak;
    }

    public async Task WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, int count = 1)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Lines.Count(match) < count)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"log line not seen within {timeout}; log:\n{string.Join("\n", Lines.TakeLast(60))}");
            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>Waits for <paramref name="count"/> messages at the receiver; on timeout the gateway log is in the error.</summary>
    public async Task<IReadOnlyList<ReceivedMessage>> ReceivedAsync(TestSmtpReceiver mx, int count, TimeSpan timeout)
    {
        try { return await mx.WaitForMessagesAsync(count, timeout).ConfigureAwait(false); }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; gateway log:\n{string.Join("\n", Lines.TakeLast(80))}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        try { await Gateway.DisposeAsync().ConfigureAwait(false); } catch (ObjectDisposedException) { }
        try { Directory.Delete(DataDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Collects whole lines written by the mail log (thread-safe).</summary>
    private sealed class LineWriter(ConcurrentQueue<string> lines) : TextWriter
    {
        private readonly System.Text.StringBuilder _sb = new();
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void Write(char value)
        {
            lock (_sb)
            {
                if (value == '\n') { lines.Enqueue(_sb.ToString().TrimEnd('\r')); _sb.Clear(); }
                else _sb.Append(value);
            }
        }

        public override void Write(string? value)
        {
            if (value is null) return;
            foreach (var c in value) Write(c);
        }

        public override void WriteLine(string? value)
        {
            Write(value);
            Write('\n');
        }
    }
}
