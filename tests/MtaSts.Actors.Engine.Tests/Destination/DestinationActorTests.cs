using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Policy;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Policy;
using MtaSts.Actors.Policy.Resolution;

namespace MtaSts.Actors.Engine.Tests.Destination;

/// <summary>The destination actor with a scripted transport: limits, retry schedule, bounces, recovery from the
/// journal, passivation. In-memory journal; the real SQLite journal is exercised by the end-to-end tests.</summary>
public sealed class DestinationActorTests : TestKit
{
    private static readonly Config Hocon = ConfigurationFactory.ParseString("""
        akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        akka.loglevel = WARNING
        """);

    private static readonly TimeSpan Long = TimeSpan.FromSeconds(20);
    private readonly DestinationRig _rig = new();

    public DestinationActorTests() : base(Hocon) { }

    private IActorRef Start(string domain) => Sys.ActorOf(Props.Create(() => new FakeShard(_rig.Props(domain), TestActor)));

    private DestinationStatus Status(IActorRef shard, string domain) =>
        shard.Ask<DestinationStatus>(new GetDestinationStatus(Dom(domain)), Long).Result;

    private void Stop(IActorRef shard)
    {
        Watch(shard);
        shard.Tell(PoisonPill.Instance);
        ExpectTerminated(shard, Long);
        Unwatch(shard);
    }

    /// <summary>An MTA-STS destination whose policy branch is a probe; policies are re-checked after 200 ms.</summary>
    private (IActorRef Destination, Akka.TestKit.TestProbe Policy) StartWithPolicyProbe(string domain)
    {
        var policy = CreateTestProbe();
        _rig.Policy = policy.Ref;
        _rig.Profile = _rig.Profile with { MtaSts = true };
        _rig.Tuning = _rig.Tuning with { PolicyReuse = TimeSpan.FromMilliseconds(200) };
        return (Start(domain), policy);
    }

    [Fact]
    public void A_valid_policy_keeps_applying_while_it_is_rechecked()
    {
        // The periodic re-check (TXT id) must not stall delivery while an unexpired policy is known (RFC 8461 §3.2).
        var (d, policy) = StartWithPolicyProbe("sts.test");
        d.Tell(_rig.Message("sts.test"));
        policy.ExpectMsg<ResolvePolicy>(Long);
        Thread.Sleep(300);
        Assert.Empty(_rig.Spool.Done); // the first resolution is awaited
        var valid = new PolicyResolution(PolicyResolutionKind.Policy, new StsPolicy(StsMode.Enforce, [], 86400, []), "1",
            PolicySource.Fetched, null, null) { ExpiresAt = DateTimeOffset.UtcNow.AddDays(1) };
        policy.Reply(new PolicyResolved(Dom("sts.test"), valid));
        AwaitCondition(() => _rig.Spool.Done.Count == 1, Long);

        Thread.Sleep(300); // past the reuse window
        d.Tell(_rig.Message("sts.test"));
        policy.ExpectMsg<ResolvePolicy>(Long); // re-checked, never answered…
        AwaitCondition(() => _rig.Spool.Done.Count == 2, Long); // …and delivered under the cached policy meanwhile
    }

    [Fact]
    public void Without_a_valid_policy_a_recheck_is_awaited()
    {
        // Last answer "no policy": the domain may just have published one, so sending before the answer is a downgrade.
        var (d, policy) = StartWithPolicyProbe("nosts.test");
        d.Tell(_rig.Message("nosts.test"));
        policy.ExpectMsg<ResolvePolicy>(Long);
        policy.Reply(new PolicyResolved(Dom("nosts.test"), new PolicyResolution(PolicyResolutionKind.NoPolicy, null, null, PolicySource.None, null, null)));
        AwaitCondition(() => _rig.Spool.Done.Count == 1, Long);

        Thread.Sleep(300);
        d.Tell(_rig.Message("nosts.test"));
        policy.ExpectMsg<ResolvePolicy>(Long);
        Thread.Sleep(500);
        Assert.Single(_rig.Spool.Done); // waiting for the answer
        policy.Reply(new PolicyResolved(Dom("nosts.test"), new PolicyResolution(PolicyResolutionKind.NoPolicy, null, null, PolicySource.None, null, null)));
        AwaitCondition(() => _rig.Spool.Done.Count == 2, Long);
    }

    [Fact]
    public void Never_opens_more_connections_than_the_profile_allows()
    {
        _rig.Profile = _rig.Profile with { MaxConcurrentConnections = 3 };
        _rig.Transport.Hold();
        var d = Start("limits.test");
        for (var i = 0; i < 20; i++) d.Tell(_rig.Message("limits.test"));

        AwaitCondition(() => _rig.Transport.Opened == 3, Long);
        // Held sends keep all three busy: a fourth would have to be opened now if the limit were not enforced.
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        Assert.Equal(3, _rig.Transport.Opened);
        _rig.Transport.Release();
        AwaitCondition(() => _rig.Spool.Done.Count == 20, Long);
        Assert.Equal(3, _rig.Transport.MaxActive);
    }

    [Fact]
    public void Never_sends_more_messages_per_connection_than_the_profile_allows()
    {
        _rig.Profile = _rig.Profile with { MaxConcurrentConnections = 2, MaxMessagesPerConnection = 4 };
        var d = Start("per-conn.test");
        for (var i = 0; i < 25; i++) d.Tell(_rig.Message("per-conn.test"));

        AwaitCondition(() => _rig.Spool.Done.Count == 25, Long);
        Assert.All(_rig.Transport.MessagesPerSession.Values, n => Assert.InRange(n, 1, 4));
        Assert.True(_rig.Transport.Opened >= 7, $"25 messages at 4 per connection need ≥ 7 connections, saw {_rig.Transport.Opened}");
        Assert.Equal(25, _rig.Transport.Jobs.Select(j => j.Job.Message.Mid).Distinct().Count());
    }

    [Fact]
    public void Recipients_of_one_message_share_a_transaction()
    {
        var d = Start("multi.test");
        d.Tell(_rig.Message("multi.test", recipients: 5));
        AwaitCondition(() => _rig.Spool.Done.Count == 5, Long);
        Assert.Equal(5, Assert.Single(_rig.Transport.Jobs).Job.Recipients.Count);
        Assert.Contains("Message finished MID 1 done", _rig.LogText.ToString());
    }

    /// <summary>A spool that reads messages back: the destination holds a window of 3 and reads the rest back.</summary>
    private void Paged()
    {
        _rig.Index = new PendingIndex(compact: true);
        _rig.Spool.CanReadMessages = true;
        _rig.Tuning = _rig.Tuning with { QueueWindow = 3 };
    }

    [Fact]
    public void A_paged_queue_delivers_every_message_once_through_its_window()
    {
        Paged();
        _rig.Transport.Hold();
        var d = Start("paged.test");
        for (var i = 0; i < 20; i++) d.Tell(_rig.Message("paged.test", recipients: 2));
        AwaitCondition(() => Status(d, "paged.test").QueuedRecipients == 40, Long);
        _rig.Transport.Release();
        AwaitCondition(() => _rig.Spool.Done.Count == 40, Long);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.All(_rig.Spool.Done.Values, n => Assert.Equal(1, n));
        Assert.Equal(40, _rig.Transport.RecipientsSent);
        Assert.True(_rig.Spool.MessagesRead >= 17, $"{_rig.Spool.MessagesRead} messages read back"); // all but the first window
        Assert.Equal(0, Status(d, "paged.test").QueuedRecipients);
    }

    [Fact]
    public void A_restarted_paged_destination_reads_its_queue_back_from_the_compact_index_and_the_spool()
    {
        Paged();
        // Dispatched (indexed) while no entity ran: the entity's start pulls MIDs and RIDs, the spool gives the rest.
        for (var i = 0; i < 10; i++) _rig.Message("restart.test");
        var d = Start("restart.test");
        AwaitCondition(() => _rig.Spool.Done.Count == 10, Long);
        Assert.Equal(10, _rig.Spool.MessagesRead);
        var sent = _rig.Transport.Jobs.SelectMany(j => j.Job.Recipients).Select(r => r.Address).ToList();
        Assert.Equal(10, sent.Count);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => $"u{i}-0@restart.test").ToHashSet(), sent.ToHashSet());
        Assert.Equal(0, Status(d, "restart.test").QueuedRecipients);
    }

    [Fact]
    public async Task An_operator_delete_reaches_messages_beyond_the_window()
    {
        Paged();
        _rig.Transport.Hold();
        var d = Start("opdel.test");
        for (var i = 0; i < 8; i++) d.Tell(_rig.Message("opdel.test"));
        AwaitCondition(() => Status(d, "opdel.test").QueuedRecipients == 8, Long);
        // MID 8 is beyond the window of 3: read back, then deleted.
        var one = await d.Ask<QueueRemoved>(new RemoveQueued(Dom("opdel.test"), 8, false, "test"), Long);
        Assert.Equal(1, one.Messages);
        AwaitCondition(() => _rig.Spool.Done.ContainsKey((8, 0)), Long);
        // The whole destination: every idle message, in the window or beyond it.
        var all = await d.Ask<QueueRemoved>(new RemoveQueued(Dom("opdel.test"), null, false, "test"), Long);
        Assert.Equal(7, all.Messages + all.InFlight);
        _rig.Transport.Release();
        AwaitCondition(() => _rig.Spool.Done.Count == 8, Long);
        Assert.All(_rig.Spool.Done.Values, n => Assert.Equal(1, n));
        Assert.Equal(0, Status(d, "opdel.test").QueuedRecipients);
    }

    [Fact]
    public void Enqueue_is_idempotent_so_a_redispatch_does_not_deliver_twice()
    {
        _rig.Transport.Hold();
        var d = Start("idem.test");
        var cmd = _rig.Message("idem.test", recipients: 2);
        d.Tell(cmd);
        d.Tell(cmd);
        AwaitCondition(() => _rig.Transport.Opened >= 1, Long);
        _rig.Transport.Release();
        AwaitCondition(() => _rig.Spool.Done.Count == 2, Long);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(2, _rig.Transport.RecipientsSent);
    }

    [Fact]
    public void A_transient_failure_is_deferred_by_the_bounce_profile_and_retried()
    {
        _rig.Bounce = _rig.Bounce with { InitialRetryInterval = TimeSpan.FromSeconds(3), MaxRetryInterval = TimeSpan.FromSeconds(3) };
        var attempts = 0;
        _rig.Transport.Decide = _ => Interlocked.Increment(ref attempts) == 1 ? RecipientOutcomeKind.Transient : RecipientOutcomeKind.Delivered;
        var d = Start("retry.test");
        var before = DateTimeOffset.UtcNow;
        d.Tell(_rig.Message("retry.test"));

        AwaitCondition(() => Status(d, "retry.test").DeferredRecipients == 1 || _rig.Spool.Done.Count > 0, Long);
        Assert.True(_rig.Spool.Done.IsEmpty, _rig.LogText.ToString());
        var status = Status(d, "retry.test");
        // Initial retry interval 3 s, no jitter: due one interval after the failed attempt.
        Assert.NotNull(status.NextAttempt);
        Assert.InRange(status.NextAttempt!.Value, before.AddSeconds(3), DateTimeOffset.UtcNow.AddSeconds(3.1));
        Assert.Contains("Delayed: DCID", _rig.LogText.ToString());
        AwaitCondition(() => _rig.Spool.Done.Count == 1, Long);
        Assert.Equal(2, attempts);
        Assert.Empty(_rig.Bounces.Requests);
    }

    [Fact]
    public void A_permanent_failure_bounces_and_finishes_the_recipient()
    {
        _rig.Transport.Decide = r => r.Rid == 0 ? RecipientOutcomeKind.Permanent : RecipientOutcomeKind.Delivered;
        var d = Start("perm.test");
        d.Tell(_rig.Message("perm.test", recipients: 2));

        AwaitCondition(() => _rig.Spool.Done.Count == 2, Long);
        var bounce = Assert.Single(_rig.Bounces.Requests);
        var (rcpt, outcome) = Assert.Single(bounce.Recipients);
        Assert.Equal(0, rcpt.Rid);
        Assert.Equal("5.1.1", outcome.Status);
        Assert.False(bounce.Delayed);
        Assert.Contains("Bounced: DCID", _rig.LogText.ToString());
    }

    [Fact]
    public void Retries_exhausted_turn_into_a_bounce()
    {
        _rig.Bounce = _rig.Bounce with { MaxRetries = 1 };
        _rig.Transport.Decide = _ => RecipientOutcomeKind.Transient;
        var d = Start("exhaust.test");
        d.Tell(_rig.Message("exhaust.test"));

        AwaitCondition(() => _rig.Spool.Done.Count == 1, Long);
        Assert.Equal(2, _rig.Transport.Jobs.Count); // first attempt + one retry
        Assert.Single(_rig.Bounces.Requests);
    }

    [Fact]
    public void Mail_older_than_max_time_in_queue_bounces_even_without_a_new_attempt()
    {
        _rig.Bounce = _rig.Bounce with { InitialRetryInterval = TimeSpan.FromHours(1), MaxRetryInterval = TimeSpan.FromHours(1), MaxTimeInQueue = TimeSpan.FromSeconds(2) };
        _rig.Tuning = _rig.Tuning with { ExpirySweep = TimeSpan.FromMilliseconds(200) };
        _rig.Transport.Decide = _ => RecipientOutcomeKind.Transient;
        var d = Start("expire.test");
        d.Tell(_rig.Message("expire.test"));

        AwaitCondition(() => _rig.Spool.Done.Count == 1, Long);
        Assert.Single(_rig.Transport.Jobs); // the hour-long retry never came: the sweep expired it
        var (_, outcome) = Assert.Single(Assert.Single(_rig.Bounces.Requests).Recipients);
        Assert.Equal("5.4.7", outcome.Status);
    }

    [Fact]
    public void A_failed_open_defers_everything_due_for_the_domain()
    {
        _rig.Transport.OpenFailure = new DeliveryOpenException(RecipientOutcomeKind.Transient, "4.4.1 - connection refused", "4.4.1");
        var d = Start("down.test");
        for (var i = 0; i < 3; i++) d.Tell(_rig.Message("down.test"));
        AwaitCondition(() => Status(d, "down.test").DeferredRecipients == 3, Long);
        Assert.Contains("connection refused", Status(d, "down.test").LastError);
        Assert.Empty(_rig.Spool.Done);

        _rig.Transport.OpenFailure = null; // the destination comes back
        AwaitCondition(() => _rig.Spool.Done.Count == 3, Long);
    }

    [Fact]
    public void Mail_for_a_destination_found_unreachable_waits_for_the_next_attempt_and_deliver_now_ends_the_wait()
    {
        _rig.Bounce = _rig.Bounce with { InitialRetryInterval = TimeSpan.FromHours(1), MaxRetryInterval = TimeSpan.FromHours(1) };
        _rig.Transport.OpenFailure = new DeliveryOpenException(RecipientOutcomeKind.Transient, "4.4.1 - connection refused", "4.4.1");
        var d = Start("dead.test");
        d.Tell(_rig.Message("dead.test"));
        AwaitCondition(() => Status(d, "dead.test").DeferredRecipients == 1, Long);
        var attempts = _rig.Transport.OpenAttempts;
        Assert.Contains("Destination dead.test unreachable (4.4.1): new mail waits until", _rig.LogText.ToString());

        // New mail within the hold: no attempt (and no deferral) per message; it stays queued for the next attempt.
        for (var i = 0; i < 5; i++) d.Tell(_rig.Message("dead.test"));
        AwaitCondition(() => Status(d, "dead.test").QueuedRecipients == 6, Long);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal(attempts, _rig.Transport.OpenAttempts);
        Assert.Equal(1, Status(d, "dead.test").DeferredRecipients);

        _rig.Transport.OpenFailure = null;
        d.Tell(new DeliverNow(Dom("dead.test")));
        AwaitCondition(() => _rig.Spool.Done.Count == 6, Long);
    }

    [Fact]
    public void Deferred_recipients_survive_a_restart_with_their_schedule()
    {
        _rig.Bounce = _rig.Bounce with { InitialRetryInterval = TimeSpan.FromHours(1), MaxRetryInterval = TimeSpan.FromHours(2) };
        _rig.Transport.Decide = _ => RecipientOutcomeKind.Transient;
        var d = Start("restart.test");
        d.Tell(_rig.Message("restart.test", recipients: 2));
        AwaitCondition(() => Status(d, "restart.test").DeferredRecipients == 2, Long);
        var before = Status(d, "restart.test");
        Stop(d);

        // A new incarnation recovers the retry records from the journal and the mail from the pending index:
        // nothing is due for an hour, so nothing is attempted.
        var again = Start("restart.test");
        var after = Status(again, "restart.test");
        Assert.Equal(2, after.QueuedRecipients);
        Assert.Equal(2, after.DeferredRecipients);
        Assert.Equal(before.NextAttempt, after.NextAttempt);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Single(_rig.Transport.Jobs);

        // delivernow: due at once, and it goes.
        _rig.Transport.Decide = _ => RecipientOutcomeKind.Delivered;
        again.Tell(new DeliverNow(Dom("restart.test")));
        AwaitCondition(() => _rig.Spool.Done.Count == 2, Long);
    }

    [Fact]
    public void An_empty_destination_passivates_and_a_busy_one_does_not()
    {
        _rig.Tuning = _rig.Tuning with { PassivateAfter = TimeSpan.FromMilliseconds(300) };
        _rig.Bounce = _rig.Bounce with { InitialRetryInterval = TimeSpan.FromHours(1), MaxRetryInterval = TimeSpan.FromHours(1) };
        var idle = Start("idle.test");
        idle.Tell(_rig.Message("idle.test"));
        ExpectMsg<Passivate>(Long);

        _rig.Transport.Decide = _ => RecipientOutcomeKind.Transient;
        var busy = Start("busy.test");
        busy.Tell(_rig.Message("busy.test"));
        AwaitCondition(() => Status(busy, "busy.test").DeferredRecipients == 1, Long);
        // Waiting for a retry is not idleness: the entity must stay to wake at the due time.
        ExpectNoMsg(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void The_periodic_expiry_sweep_does_not_keep_an_empty_destination_alive()
    {
        // The sweep comes more often than the idle timeout (1 min vs 2 min in production): it is not traffic.
        _rig.Tuning = _rig.Tuning with { PassivateAfter = TimeSpan.FromMilliseconds(600), ExpirySweep = TimeSpan.FromMilliseconds(100) };
        var idle = Start("swept.test");
        idle.Tell(_rig.Message("swept.test"));
        AwaitCondition(() => _rig.Spool.Done.Count == 1, Long);
        ExpectMsg<Passivate>(Long);
    }

    [Fact]
    public void The_recipient_limit_holds_mail_and_survives_a_restart()
    {
        _rig.Profile = _rig.Profile with { RecipientLimit = new RecipientLimit(5, 10) };
        var d = Start("rate.test");
        for (var i = 0; i < 12; i++) d.Tell(_rig.Message("rate.test"));

        AwaitCondition(() => _rig.Spool.Done.Count == 5, Long);
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        Assert.Equal(5, _rig.Transport.RecipientsSent);
        Assert.Equal(7, Status(d, "rate.test").QueuedRecipients);
        Stop(d);

        // The window is in the journal: a restart does not reset the budget.
        var again = Start("rate.test");
        Assert.Equal(7, Status(again, "rate.test").QueuedRecipients);
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        Assert.Equal(5, _rig.Transport.RecipientsSent);

        // Raising the limit (a config reload) releases the held mail.
        _rig.Profile = _rig.Profile with { RecipientLimit = new RecipientLimit(100, 10) };
        again.Tell(new DeliverNow(Dom("rate.test")));
        AwaitCondition(() => _rig.Spool.Done.Count == 12, Long);
    }

    [Fact]
    public void A_backlog_starts_with_a_few_connections_and_ramps_up_on_success()
    {
        _rig.Profile = _rig.Profile with { MaxConcurrentConnections = 50, MaxMessagesPerConnection = 10 };
        _rig.Transport.Hold();
        var d = Start("backlog.test");
        for (var i = 0; i < 100; i++) d.Tell(_rig.Message("backlog.test"));

        // Slow start: the initial concurrency (5), not one connection per queued message.
        AwaitCondition(() => _rig.Transport.Opened == 5, Long);
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        Assert.Equal(5, _rig.Transport.Opened);
        _rig.Transport.Release();
        AwaitCondition(() => _rig.Spool.Done.Count == 100, Long);
        Assert.True(_rig.Transport.MaxActive > 5, $"concurrency should grow on success, max was {_rig.Transport.MaxActive}");
        Assert.InRange(_rig.Transport.MaxActive, 6, 50);
    }

    [Fact]
    public void A_delay_warning_dsn_goes_once_per_interval_up_to_max_count()
    {
        _rig.Bounce = _rig.Bounce with
        {
            DelayWarning = new DelayWarning(TimeSpan.FromSeconds(1), MaxCount: 1),
            InitialRetryInterval = TimeSpan.FromMilliseconds(700), MaxRetryInterval = TimeSpan.FromMilliseconds(700),
        };
        var attempts = 0;
        _rig.Transport.Decide = _ => Interlocked.Increment(ref attempts) < 5 ? RecipientOutcomeKind.Transient : RecipientOutcomeKind.Delivered;
        var d = Start("slow.test");
        d.Tell(_rig.Message("slow.test"));

        AwaitCondition(() => _rig.Spool.Done.Count == 1, Long);
        // Attempts at ~0, 0.7, 1.4, 2.1 s failed; only the first failure after 1 s in the queue warns, and only once.
        var warning = Assert.Single(_rig.Bounces.Requests);
        Assert.True(warning.Delayed);
        Assert.Equal("4.2.2", Assert.Single(warning.Recipients).Outcome.Status);
    }
}
