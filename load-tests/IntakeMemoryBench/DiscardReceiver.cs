using System.Net;
using System.Net.Sockets;

namespace MtaSts.Actors.IntakeMemoryBench;

/// <summary>
/// Minimal SMTP receiver on 127.0.0.1 for <c>--deliver</c>: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; accepts every
/// message and discards it while reading (a 64 KB buffer per connection, nothing kept), counting messages and octets.
/// </summary>
internal sealed class DiscardReceiver : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private readonly List<Task> _sessions = [];
    private long _messages, _octets;
    private int _connections, _active, _peak;

    public int Port { get; }
    public long Messages => Interlocked.Read(ref _messages);
    public long Octets => Interlocked.Read(ref _octets);
    public int Connections => Volatile.Read(ref _connections);
    /// <summary>Most sessions connected at once.</summary>
    public int PeakConcurrent => Volatile.Read(ref _peak);

    /// <param name="port">0: any free port (see <see cref="Port"/>).</param>
    public DiscardReceiver(int port = 0)
    {
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start(4096); // 1,000 outbound connections may arrive at once (the gateway's default limit)
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accept = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try { s = await _listener.AcceptSocketAsync(_stop.Token).ConfigureAwait(false); }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
            Interlocked.Increment(ref _connections);
            lock (_sessions) _sessions.Add(Task.Run(() => SessionAsync(s)));
        }
    }

    private async Task SessionAsync(Socket socket)
    {
        var ct = _stop.Token;
        var active = Interlocked.Increment(ref _active);
        for (var peak = Volatile.Read(ref _peak); active > peak; peak = Volatile.Read(ref _peak))
            if (Interlocked.CompareExchange(ref _peak, active, peak) == peak) break;
        try { await DialogueAsync(socket, ct).ConfigureAwait(false); }
        finally { Interlocked.Decrement(ref _active); }
    }

    private async Task DialogueAsync(Socket socket, CancellationToken ct)
    {
        using var wire = new SmtpWire(new NetworkStream(socket, ownsSocket: true));
        try
        {
            await wire.WriteAsync("220 mx.intake-bench.invalid ESMTP discard\r\n", ct).ConfigureAwait(false);
            while (await wire.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
            {
                var verb = (line.Length >= 4 ? line[..4] : line).ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO":
                        await wire.WriteAsync("250-mx.intake-bench.invalid\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n", ct).ConfigureAwait(false);
                        break;
                    case "DATA":
                        await wire.WriteAsync("354 go ahead\r\n", ct).ConfigureAwait(false);
                        var n = await wire.DiscardDataAsync(ct).ConfigureAwait(false);
                        if (n < 0) return;
                        Interlocked.Add(ref _octets, n);
                        Interlocked.Increment(ref _messages);
                        await wire.WriteAsync("250 2.0.0 discarded\r\n", ct).ConfigureAwait(false);
                        break;
                    case "QUIT":
                        await wire.WriteAsync("221 2.0.0 bye\r\n", ct).ConfigureAwait(false);
                        return;
                    default: // HELO, MAIL, RCPT, RSET, NOOP and anything else
                        await wire.WriteAsync("250 2.0.0 ok\r\n", ct).ConfigureAwait(false);
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _accept.ConfigureAwait(false);
        Task[] sessions;
        lock (_sessions) sessions = [.. _sessions];
        await Task.WhenAll(sessions).ConfigureAwait(false);
        _stop.Dispose();
    }
}
