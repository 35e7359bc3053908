using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>Holds every append until released, so a test can look at the wire while the "fsync" is pending.</summary>
internal sealed class GatedSpool(ISpool inner) : ISpool
{
    public TaskCompletionSource AppendStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string? SpillDirectory => inner.SpillDirectory;
    public async Task<SpooledMessage> AppendAsync(long mid, Envelope envelope, MessageBody body, CancellationToken ct = default)
    {
        AppendStarted.TrySetResult();
        await Release.Task.WaitAsync(ct);
        return await inner.AppendAsync(mid, envelope, body, ct);
    }

    public ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(long mid, CancellationToken ct = default) => inner.ReadBodyAsync(mid, ct);
    public ValueTask<bool> MarkDoneAsync(long mid, IReadOnlyList<int> rids, CancellationToken ct = default) => inner.MarkDoneAsync(mid, rids, ct);
    public IReadOnlyList<RecoveredMessage> Recover() => inner.Recover();
    public long HighestMid => inner.HighestMid;
    public int Count => inner.Count;
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>A spool whose disk has failed.</summary>
internal sealed class FailingSpool(ISpool inner) : ISpool
{
    public int Attempts;

    public string? SpillDirectory => inner.SpillDirectory;
    public Task<SpooledMessage> AppendAsync(long mid, Envelope envelope, MessageBody body, CancellationToken ct = default)
    {
        Interlocked.Increment(ref Attempts);
        return Task.FromException<SpooledMessage>(new IOException("No space left on device"));
    }

    public ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(long mid, CancellationToken ct = default) => inner.ReadBodyAsync(mid, ct);
    public ValueTask<bool> MarkDoneAsync(long mid, IReadOnlyList<int> rids, CancellationToken ct = default) => inner.MarkDoneAsync(mid, rids, ct);
    public IReadOnlyList<RecoveredMessage> Recover() => inner.Recover();
    public long HighestMid => inner.HighestMid;
    public int Count => inner.Count;
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

public sealed class IntakeDurabilityTests
{
    [Fact]
    public async Task The_250_is_sent_only_after_the_spool_append_completed()
    {
        GatedSpool? gate = null;
        await using var h = await new IntakeHarness(wrapSpool: s => gate = new GatedSpool(s)).StartAsync();
        await using var c = await h.OpenDataAsync();
        await c.SendAsync("Subject: durable\r\n\r\nbody\r\n.\r\n");
        await gate!.AppendStarted.Task.WaitAsync(IntakeHarness.Generous);

        // While the append is pending nothing may reach the client (the read must time out, not return a reply).
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => c.ReadReplyAsync(TimeSpan.FromSeconds(1)));
        Assert.Equal(0, h.Spool.Count);
        Assert.False(h.TryHandedOff(out _));

        gate.Release.SetResult();
        var reply = await c.ReadReplyAsync();
        Assert.Equal(250, reply.Code);
        Assert.Equal(1, h.Spool.Count); // on disk before the client saw 250
        var m = await h.NextHandedOffAsync();
        Assert.Contains("body", await h.BodyTextAsync(m.Mid));
    }

    [Fact]
    public async Task A_client_that_vanishes_after_the_dot_still_gets_its_message_delivered()
    {
        GatedSpool? gate = null;
        await using var h = await new IntakeHarness(wrapSpool: s => gate = new GatedSpool(s)).StartAsync();
        var c = await h.OpenDataAsync();
        await c.SendAsync("x\r\n.\r\n");
        await gate!.AppendStarted.Task.WaitAsync(IntakeHarness.Generous);
        await c.DisposeAsync();
        gate.Release.SetResult();
        var m = await h.NextHandedOffAsync(); // durable, so handed off although the 250 may not have arrived
        Assert.Equal(1, h.Spool.Count);
        Assert.Equal("b@y.test", m.Envelope.Recipients[0].Address);
    }

    [Fact]
    public async Task Spool_failure_gets_451_and_the_session_goes_on()
    {
        FailingSpool? failing = null;
        await using var h = await new IntakeHarness(wrapSpool: s => failing = new FailingSpool(s)).StartAsync();
        await using var c = await h.OpenDataAsync();
        await c.SendAsync("x\r\n.\r\n");
        Assert.Equal("451 4.3.0 Requested action aborted: local error in processing", (await c.ReadReplyAsync()).Lines[0]);
        Assert.False(h.TryHandedOff(out _));
        var logged = await h.WaitForLogAsync(e => e.Event == "mid_spool_failed");
        Assert.Equal(MtaSts.Actors.Logging.MailLogLevel.Critical, logged.Level);
        Assert.Contains("No space left on device", logged.Text);
        Assert.Equal(250, (await c.CommandAsync("MAIL FROM:<a@x.test>")).Code); // transaction was reset
        Assert.Equal(1, failing!.Attempts);
    }

    [Fact]
    public async Task Sink_failure_keeps_the_250_and_the_message_in_the_spool()
    {
        var dir = Path.Combine(Path.GetTempPath(), "intake-sink-" + Guid.NewGuid().ToString("N"));
        var spool = new SegmentSpool(new SegmentSpoolOptions(dir));
        var log = new MtaSts.Actors.Logging.MailLog(null);
        var entries = new System.Collections.Concurrent.ConcurrentQueue<MtaSts.Actors.Logging.MailLogEntry>();
        log.Written += entries.Enqueue;
        var options = new SmtpListenerOptions { Endpoints = [new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0)], HostName = "mx.test" };
        await using (var listener = new SmtpListener(options, spool, (_, _) => throw new InvalidOperationException("engine down"),
                         new MtaSts.Actors.Logging.IdSequence(), new MtaSts.Actors.Logging.IdSequence(), log))
        {
            await listener.StartAsync();
            await using var c = await RawSmtpClient.ConnectAsync(listener.LocalEndpoints[0].Port);
            await c.ReadReplyAsync();
            await c.CommandAsync("EHLO client.test");
            await c.CommandAsync("MAIL FROM:<a@x.test>");
            await c.CommandAsync("RCPT TO:<b@y.test>");
            await c.CommandAsync("DATA");
            await c.SendAsync("x\r\n.\r\n");
            Assert.Equal(250, (await c.ReadReplyAsync()).Code);
            Assert.Equal(250, (await c.CommandAsync("NOOP")).Code); // the hand-off has run by the time NOOP is answered
            Assert.Contains(entries, e => e.Event == "mid_handoff_failed");
        }
        await spool.DisposeAsync();
        await using (var reopened = new SegmentSpool(new SegmentSpoolOptions(dir)))
            Assert.Single(reopened.Recover()); // picked up again at the next start
        Directory.Delete(dir, recursive: true);
    }
}
