using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace MtaSts.Actors.IntakeMemoryBench;

/// <summary>What one message of one session got: the final reply after the ".", the DATA transfer time (MAIL → final
/// reply) and when it finished on the run clock.</summary>
internal sealed record Transfer(int Session, int Round, int Code, string Reply, long Octets, double Seconds, double EndT);

/// <summary>
/// One raw-socket SMTP client session: connects and says EHLO, waits for the common start signal (so that all
/// sessions transfer at the same time), then for each round MAIL FROM (with SIZE) / RCPT TO / DATA, streams the
/// message and reads the reply to the final dot; QUIT at the end. No pipelining: every command waits for its reply.
/// </summary>
internal static class LoadClient
{
    public static async Task<List<Transfer>> RunAsync(int session, int port, int rounds, long size, MessageText text,
        Stopwatch clock, Task start, Action<long> progress, CancellationToken ct)
    {
        var results = new List<Transfer>();
        using var tcp = new TcpClient { NoDelay = true, SendBufferSize = 1 << 20 };
        await tcp.ConnectAsync(IPAddress.Loopback, port, ct).ConfigureAwait(false);
        using var wire = new SmtpWire(tcp.GetStream());
        await Expect(wire, 220, "greeting", ct).ConfigureAwait(false);
        await wire.WriteAsync($"EHLO load{session}.intake-bench.invalid\r\n", ct).ConfigureAwait(false);
        await Expect(wire, 250, "EHLO", ct).ConfigureAwait(false);
        await start.WaitAsync(ct).ConfigureAwait(false);

        var inv = CultureInfo.InvariantCulture;
        var counting = new CountingStream(wire.Stream, progress);
        for (var round = 0; round < rounds; round++)
        {
            var t0 = clock.Elapsed.TotalSeconds;
            var id = $"{session.ToString(inv)}-{round.ToString(inv)}";
            await wire.WriteAsync($"MAIL FROM:<bench@sender.intake-bench.test> SIZE={size.ToString(inv)}\r\n", ct).ConfigureAwait(false);
            await Expect(wire, 250, "MAIL", ct).ConfigureAwait(false);
            await wire.WriteAsync($"RCPT TO:<user{session.ToString(inv)}@dest.intake-bench.test>\r\n", ct).ConfigureAwait(false);
            await Expect(wire, 250, "RCPT", ct).ConfigureAwait(false);
            await wire.WriteAsync("DATA\r\n", ct).ConfigureAwait(false);
            await Expect(wire, 354, "DATA", ct).ConfigureAwait(false);
            var headers = $"""
                From: Intake Bench <bench@sender.intake-bench.test>
                To: <user{session.ToString(inv)}@dest.intake-bench.test>
                Subject: intake memory benchmark, session {session.ToString(inv)}, round {round.ToString(inv)}
                Date: {DateTimeOffset.UtcNow.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", inv)}
                Message-ID: <{id}.{Guid.NewGuid():N}@intake-bench.test>
                MIME-Version: 1.0
                Content-Type: text/plain; charset=us-ascii
                Content-Transfer-Encoding: 7bit

                """;
            var octets = await text.WriteAsync(counting, size, headers, ct).ConfigureAwait(false);
            var (code, reply) = await wire.ReadReplyAsync(ct).ConfigureAwait(false);
            var end = clock.Elapsed.TotalSeconds;
            results.Add(new Transfer(session, round, code, reply, octets, end - t0, end));
            if (code != 250) break;
        }
        try
        {
            await wire.WriteAsync("QUIT\r\n", ct).ConfigureAwait(false);
            await wire.ReadReplyAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException) { }
        return results;
    }

    private static async Task Expect(SmtpWire wire, int code, string what, CancellationToken ct)
    {
        var (got, text) = await wire.ReadReplyAsync(ct).ConfigureAwait(false);
        if (got != code) throw new IOException($"{what}: expected {code}, got '{text}'");
    }

    /// <summary>Write-through wrapper that reports the octets written (progress line).</summary>
    private sealed class CountingStream(Stream inner, Action<long> progress) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            progress(count);
        }
        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            // Large writes in 256 KB slices, so that progress (and a cancellation) is seen while a 4 MB block is sent.
            for (var off = 0; off < buffer.Length; off += 256 * 1024)
            {
                var slice = buffer.Slice(off, Math.Min(256 * 1024, buffer.Length - off));
                await inner.WriteAsync(slice, cancellationToken).ConfigureAwait(false);
                progress(slice.Length);
            }
        }
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }
}
