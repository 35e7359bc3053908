using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Cluster.Sharding;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Replies;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Tests.Destination;

/// <summary>A scripted transport: counts sessions (concurrency, messages per session) and decides per recipient.</summary>
public sealed class FakeTransport : IDeliveryTransport
{
    private int _active, _maxActive, _opened, _attempts;
    private volatile TaskCompletionSource _gate = Open();

    /// <summary>Outcome per recipient address; default: delivered.</summary>
    public Func<RecipientRef, RecipientOutcomeKind> Decide { get; set; } = _ => RecipientOutcomeKind.Delivered;
    public Exception? OpenFailure { get; set; }
    public ConcurrentQueue<(long Session, DeliveryJob Job)> Jobs { get; } = new();
    public ConcurrentDictionary<long, int> MessagesPerSession { get; } = new();
    public int Active => Volatile.Read(ref _active);
    public int MaxActive => Volatile.Read(ref _maxActive);
    public int Opened => Volatile.Read(ref _opened);
    /// <summary>Connections asked for, failed ones included.</summary>
    public int OpenAttempts => Volatile.Read(ref _attempts);
    public int RecipientsSent => Jobs.Sum(j => j.Job.Recipients.Count);

    private static TaskCompletionSource Open()
    {
        var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        t.SetResult();
        return t;
    }

    /// <summary>Sends wait until <see cref="Release"/> (sessions still open: concurrency builds up).</summary>
    public void Hold() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    public void Release() => _gate.TrySetResult();

    public Task<IDeliverySession> OpenAsync(SessionRequest request, CancellationToken ct)
    {
        Interlocked.Increment(ref _attempts);
        if (OpenFailure is { } e) return Task.FromException<IDeliverySession>(e);
        Interlocked.Increment(ref _opened);
        var now = Interlocked.Increment(ref _active);
        int seen;
        while ((seen = Volatile.Read(ref _maxActive)) < now && Interlocked.CompareExchange(ref _maxActive, now, seen) != seen) { }
        return Task.FromResult<IDeliverySession>(new Session(this, request.Dcid));
    }

    private sealed class Session(FakeTransport t, long dcid) : IDeliverySession
    {
        private int _closed;
        public string Peer => $"fake [{dcid}]";

        public async Task<JobResult> SendAsync(DeliveryJob job, CancellationToken ct)
        {
            await t._gate.Task.WaitAsync(ct).ConfigureAwait(false);
            t.Jobs.Enqueue((dcid, job));
            t.MessagesPerSession.AddOrUpdate(dcid, 1, (_, n) => n + 1);
            var outcomes = job.Recipients.Select(r => t.Decide(r) switch
            {
                RecipientOutcomeKind.Delivered => new RecipientOutcome(r.Rid, RecipientOutcomeKind.Delivered, "250 ok", "2.0.0"),
                RecipientOutcomeKind.Transient => new RecipientOutcome(r.Rid, RecipientOutcomeKind.Transient,
                    "4.2.2 - mailbox full ('452', ['4.2.2 mailbox full'])", "4.2.2", "fake", SmtpReply.Parse("452 4.2.2 mailbox full")),
                _ => new RecipientOutcome(r.Rid, RecipientOutcomeKind.Permanent,
                    "5.1.1 - no such user ('550', ['5.1.1 no such user'])", "5.1.1", "fake", SmtpReply.Parse("550 5.1.1 no such user")),
            }).ToArray();
            return new JobResult(job.Message.Mid, outcomes, ConnectionUsable: true);
        }

        public Task CloseAsync(CancellationToken ct) => DisposeAsync().AsTask();

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0) Interlocked.Decrement(ref t._active);
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>Records MarkDone calls and, like the real spool, answers whether a call finished its message (the rig
/// registers each message's recipients); the destination actor never reads bodies (the transport does).</summary>
public sealed class FakeSpool : ISpool
{
    public ConcurrentDictionary<(long Mid, int Rid), int> Done { get; } = new();
    private readonly ConcurrentDictionary<long, HashSet<int>> _outstanding = new();
    private readonly ConcurrentDictionary<long, SpooledMessage> _messages = new();
    public void Register(long mid, IEnumerable<int> rids) => _outstanding[mid] = rids.ToHashSet();
    /// <summary>Keeps the envelope so that the spool reads messages back by MID (a paged destination queue).</summary>
    public void Register(SpooledMessage message) => _messages[message.Mid] = message;
    /// <summary>Messages read back by MID (<see cref="ReadMessageAsync"/>).</summary>
    public int MessagesRead => Volatile.Read(ref _messagesRead);
    private int _messagesRead;
    public bool CanReadMessages { get; set; }
    public ValueTask<SpooledMessage?> ReadMessageAsync(long mid, CancellationToken ct = default)
    {
        Interlocked.Increment(ref _messagesRead);
        var held = _outstanding.TryGetValue(mid, out var left) && left.Count > 0;
        return ValueTask.FromResult(held ? _messages.GetValueOrDefault(mid) : null);
    }
    public Task<SpooledMessage> AppendAsync(long mid, MtaSts.Actors.Spool.Envelope envelope, MessageBody body, CancellationToken ct = default) =>
        throw new NotSupportedException();
    public ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(long mid, CancellationToken ct = default) => ValueTask.FromResult<ReadOnlyMemory<byte>>(Array.Empty<byte>());
    public ValueTask<bool> MarkDoneAsync(long mid, IReadOnlyList<int> rids, CancellationToken ct = default)
    {
        foreach (var r in rids) Done.AddOrUpdate((mid, r), 1, (_, n) => n + 1);
        if (!_outstanding.TryGetValue(mid, out var left)) return ValueTask.FromResult(false);
        lock (left)
        {
            var removed = rids.Count(left.Remove);
            return ValueTask.FromResult(removed > 0 && left.Count == 0);
        }
    }
    public IReadOnlyList<RecoveredMessage> Recover() => [];
    public long HighestMid => 0;
    public int Count => 0;
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

public sealed class FakeBounces : IBounceSink
{
    public ConcurrentQueue<BounceRequest> Requests { get; } = new();
    public Task QueueAsync(BounceRequest request, CancellationToken ct = default)
    {
        Requests.Enqueue(request);
        return Task.CompletedTask;
    }
}

/// <summary>Stands in for the shard: creates the destination as its child, forwards what the child sends it
/// (Passivate) to a probe, and everything else to the child.</summary>
public sealed class FakeShard : ReceiveActor
{
    public FakeShard(Props child, IActorRef probe)
    {
        var c = Context.ActorOf(child, "destination");
        Context.Watch(c);
        Receive<Terminated>(t => probe.Tell(t));
        ReceiveAny(m =>
        {
            // Like the shard: forward Passivate to the probe and stop the entity with its stop message.
            if (m is Passivate p && Sender.Equals(c)) c.Tell(p.StopMessage);
            if (Sender.Equals(c)) probe.Forward(m);
            else c.Forward(m);
        });
    }
}

/// <summary>Everything a destination actor test needs: services with fakes and mutable settings.</summary>
public sealed class DestinationRig
{
    public FakeTransport Transport { get; } = new();
    public FakeSpool Spool { get; } = new();
    public FakeBounces Bounces { get; } = new();
    public PendingIndex Index { get; set; } = new();
    public StringWriter LogText { get; } = new();
    /// <summary>The policy branch the destination asks (null: MTA-STS resolution is skipped).</summary>
    public IActorRef? Policy { get; set; }
    public DestinationProfile Profile { get; set; } = new() { MaxConcurrentConnections = 5, MaxMessagesPerConnection = 50 };
    public BounceProfile Bounce { get; set; } = new() { InitialRetryInterval = TimeSpan.FromSeconds(1), MaxRetryInterval = TimeSpan.FromSeconds(2), RetryJitter = 0 };
    public EngineTuning Tuning { get; set; } = new() { ConnectionIdleTime = TimeSpan.FromMilliseconds(100), PassivateAfter = TimeSpan.FromMinutes(5) };
    private long _mid;

    public DeliveryServices Services() => new(Transport, Spool, new MailLog(TextWriter.Synchronized(LogText)), new IdSequence(),
        _ => new DestinationSettings(Profile, Bounce), Bounces, TimeProvider.System, () => Policy, Tuning);

    public Props Props(string domain) => DestinationActor.Props(domain, Services(), Index);

    /// <summary>Registers a message in the pending index (as the dispatcher does) and returns the command.</summary>
    public EnqueueRecipients Message(string domain, int recipients = 1, string sender = "app@sender.test", DateTimeOffset? received = null)
    {
        var msg = new MessageRef(Interlocked.Increment(ref _mid), sender, received ?? DateTimeOffset.UtcNow, 100);
        var rcpts = Enumerable.Range(0, recipients).Select(i => new RecipientRef(i, $"u{msg.Mid}-{i}@{domain}")).ToArray();
        Index.Add(Dom(domain), msg, rcpts);
        Spool.Register(msg.Mid, rcpts.Select(r => r.Rid));
        if (Index.Compact)
            Spool.Register(new SpooledMessage(msg.Mid, new MtaSts.Actors.Spool.Envelope(sender,
                rcpts.Select(r => new Recipient(r.Rid, r.Address)).ToArray(), msg.ReceivedAt), msg.BodyLength));
        return new EnqueueRecipients(Dom(domain), msg, rcpts);
    }
}
