using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Receivers;

/// <summary>
/// Postfix's smtp-sink as the receiver (--receiver smtp-sink). It is C and cheaper per message than our
/// receiver, so it shows how much of the box the receiver itself costs; but it only counts, it can't give
/// end-to-end latency or loss per message. Hostile modes via --sink-args, e.g. "-Q data" (421 after DATA),
/// "-r rcpt" (4xx to RCPT), "-f rcpt" (5xx), "-w 1" (1 s before the DATA reply), "-W rcpt:1:10" (random delays).
/// </summary>
public sealed partial class PostfixSmtpSink(IPEndPoint endpoint, IReadOnlyList<string> extraArgs) : IReceiver
{
    private Process? _process;
    private long _messages;
    private long _sessions;

    public string Name => "smtp-sink (Postfix) " + string.Join(' ', extraArgs);
    public IPEndPoint Endpoint { get; } = Loopback.Require(endpoint);
    public bool Running => _process is { HasExited: false };
    public long MessagesReceived => Interlocked.Read(ref _messages);

    public async Task StartAsync(CancellationToken ct)
    {
        if (!File.Exists("/usr/sbin/smtp-sink")) throw new InvalidOperationException("smtp-sink not installed: run load-tests/setup.sh");
        var psi = new ProcessStartInfo("/usr/sbin/smtp-sink") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        // -c: counters on stdout; -m 1000: more than the default 256 simultaneous sessions; -u nobody: required as root.
        foreach (var a in new[] { "-u", "nobody", "-c", "-m", "1000" }.Concat(extraArgs).Concat([$"{Endpoint.Address}:{Endpoint.Port}", "1024"]))
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start smtp-sink");
        _ = Task.Run(() => ReadCountersAsync(_process.StandardOutput), CancellationToken.None);
        _ = _process.StandardError.ReadToEndAsync(ct);
        if (!await Loopback.WaitForListenerAsync(Endpoint, TimeSpan.FromSeconds(5), ct)) throw new InvalidOperationException("smtp-sink did not start");
    }

    private async Task ReadCountersAsync(StreamReader stdout)
    {
        // smtp-sink -c rewrites one status line with '\r': "sess=18 quit=1 mesg=2000".
        var buf = new char[4096];
        var pending = "";
        int n;
        while ((n = await stdout.ReadAsync(buf)) > 0)
        {
            pending += new string(buf, 0, n);
            var cut = pending.LastIndexOfAny(['\r', '\n']);
            if (cut < 0) continue;
            var m = Counter().Matches(pending[..cut]);
            if (m.Count > 0)
            {
                var last = m[^1];
                Interlocked.Exchange(ref _sessions, long.Parse(last.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
                Interlocked.Exchange(ref _messages, long.Parse(last.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
            pending = pending[(cut + 1)..];
        }
    }

    [GeneratedRegex(@"sess=(\d+).*?mesg=(\d+)")]
    private static partial Regex Counter();

    public async Task StopAsync()
    {
        if (_process is null) return;
        if (!_process.HasExited) _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
        _process = null;
    }

    public ReceiverSummary Summary() => new(Name, Interlocked.Read(ref _sessions), MessagesReceived, 0, 0, 0, 0, 0, [],
        "smtp-sink counts only: no per-message end-to-end latency, loss/duplicate or per-domain figures");

    public async ValueTask DisposeAsync() => await StopAsync();
}
