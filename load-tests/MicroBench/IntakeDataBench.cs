using System.Net;
using System.Net.Sockets;
using System.Text;
using BenchmarkDotNet.Attributes;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.MicroBench;

/// <summary>
/// The intake's DATA path alone: one pipelined MAIL/RCPT/DATA/body/"." transaction per operation on a kept-open
/// loopback connection to a real <see cref="SmtpListener"/>, with a spool that only drains the body (no disk, no
/// fsync): what the session costs per message of a given size (2 KB relay mail, 100 KB large mail).
/// </summary>
[MemoryDiagnoser]
public class IntakeDataBench
{
    private SmtpListener _listener = null!;
    private TcpClient _client = null!;
    private NetworkStream _stream = null!;
    private byte[] _transaction = [];
    private readonly byte[] _replies = new byte[4096];

    [Params(2 * 1024, 100 * 1024)]
    public int BodySize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var options = new SmtpListenerOptions
        {
            Endpoints = [new IPEndPoint(IPAddress.Loopback, 0)],
            HostName = "bench.test",
            AddReceivedHeader = true,
        };
        _listener = new SmtpListener(options, new DrainSpool(), (_, _) => ValueTask.CompletedTask, new IdSequence(1), new IdSequence(1));
        _listener.StartAsync().GetAwaiter().GetResult();
        _client = new TcpClient();
        _client.Connect(_listener.LocalEndpoints[0]);
        _stream = _client.GetStream();
        ReadReply(1); // greeting
        Send("HELO client.bench\r\n"u8.ToArray()); // one reply line (EHLO's is multi-line)
        ReadReply(1);
        var body = new StringBuilder("From: a@x.test\r\nTo: b@y.test\r\nSubject: bench\r\n\r\n");
        for (int i = 0; body.Length < BodySize; i++)
            body.Append(i % 40 == 0 ? ".a dot-stuffed line follows the 'transparency' rule\r\n" : "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\r\n");
        var dotted = body.ToString().Replace("\r\n.", "\r\n..", StringComparison.Ordinal);
        _transaction = Encoding.ASCII.GetBytes($"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n{dotted}.\r\n");
    }

    [Benchmark]
    public void Transaction()
    {
        Send(_transaction);
        ReadReply(4); // 250 MAIL, 250 RCPT, 354, 250 queued
    }

    private void Send(byte[] bytes) => _stream.Write(bytes);

    private void ReadReply(int finalLines)
    {
        int lines = 0;
        while (lines < finalLines)
        {
            int n = _stream.Read(_replies);
            if (n == 0) throw new IOException("listener closed the connection");
            // After EHLO every reply here is one line ("250 ...", "354 ..."); the EHLO reply's last line is the one
            // without a hyphen, so the setup waits for one LF more than it needs only if EHLO were single-line.
            lines += _replies.AsSpan(0, n).Count((byte)'\n');
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _listener.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Reads the body (as a spool must) and stores nothing.</summary>
    private sealed class DrainSpool : ISpool
    {
        public async Task<SpooledMessage> AppendAsync(long mid, Envelope envelope, MessageBody body, CancellationToken ct = default)
        {
            await using var s = body.OpenRead();
            var buffer = new byte[16384];
            long length = 0;
            int n;
            while ((n = await s.ReadAsync(buffer, ct)) > 0) length += n;
            return new SpooledMessage(mid, envelope, length);
        }

        public ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(long mid, CancellationToken ct = default) => throw new NotSupportedException();
        public ValueTask<bool> MarkDoneAsync(long mid, IReadOnlyList<int> rids, CancellationToken ct = default) => ValueTask.FromResult(true);
        public IReadOnlyList<RecoveredMessage> Recover() => [];
        public long HighestMid => 0;
        public int Count => 0;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
