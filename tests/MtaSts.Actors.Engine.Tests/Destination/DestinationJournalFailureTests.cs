using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.TestKit.Xunit2;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Tests.Destination;

/// <summary>An in-memory journal whose writes for persistence ids containing "fail-journal" fail like a timed-out
/// SQL write (the circuit breaker's TimeoutException): the actor sees a persist failure and stops.</summary>
public sealed class FailingWriteJournal : MemoryJournal
{
    protected override Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken)
    {
        var batch = messages.ToList();
        return batch.Any(w => w.PersistenceId.Contains("fail-journal", StringComparison.Ordinal))
            ? Task.FromException<IImmutableList<Exception>>(new TimeoutException("The operation has timed out."))
            : base.WriteMessagesAsync(batch, cancellationToken);
    }
}

public sealed class DestinationJournalFailureTests : TestKit
{
    private static readonly Config Hocon = ConfigurationFactory.ParseString("""
        akka.persistence.journal.plugin = "akka.persistence.journal.failing"
        akka.persistence.journal.failing {
          class = "MtaSts.Actors.Engine.Tests.Destination.FailingWriteJournal, MtaSts.Actors.Engine.Tests"
          plugin-dispatcher = "akka.actor.default-dispatcher"
        }
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        akka.loglevel = OFF
        """);

    private static readonly TimeSpan Long = TimeSpan.FromSeconds(20);
    private readonly DestinationRig _rig = new();

    public DestinationJournalFailureTests() : base(Hocon) =>
        _rig.Bounce = _rig.Bounce with { InitialRetryInterval = TimeSpan.FromHours(1), MaxRetryInterval = TimeSpan.FromHours(1) };

    [Fact]
    public void A_deferral_whose_journal_write_fails_is_still_logged()
    {
        // The write may have committed (a timeout is ambiguous): the next incarnation would then recover the deferral
        // and wait without a second attempt, so the attempt's "Delayed" line must be written now.
        var msg = SendOneThatIsDeferred("fail-journal.test");
        AwaitCondition(() => _rig.LogText.ToString().Contains("journal write failed", StringComparison.Ordinal), Long);
        var log = _rig.LogText.ToString();
        Assert.Contains($"Delayed: DCID ", log);
        Assert.Contains($"MID {msg.Message.Mid} From: <app@sender.test> To: <u{msg.Message.Mid}-0@fail-journal.test> RID 0", log);
        Assert.True(log.IndexOf("Delayed: DCID", StringComparison.Ordinal) < log.IndexOf("journal write failed", StringComparison.Ordinal));
        Assert.Empty(_rig.Spool.Done); // nothing finished: the mail stays in the spool
        Assert.True(log.IndexOf("Delayed: DCID", StringComparison.Ordinal) >= 0, log);
    }

    [Fact]
    public void A_deferral_whose_journal_write_succeeds_is_logged_once()
    {
        var msg = SendOneThatIsDeferred("ok-journal.test");
        AwaitCondition(() => _rig.LogText.ToString().Contains($"MID {msg.Message.Mid} From:", StringComparison.Ordinal), Long);
        Thread.Sleep(300);
        var log = _rig.LogText.ToString();
        Assert.Equal(1, CountOf(log, $"Delayed: DCID "));
        Assert.DoesNotContain("journal write failed", log);
    }

    /// <summary>A destination whose receiver answers 4xx gets one message: its deferral is journaled.</summary>
    private EnqueueRecipients SendOneThatIsDeferred(string domain)
    {
        _rig.Transport.Decide = _ => RecipientOutcomeKind.Transient;
        var shard = Sys.ActorOf(Props.Create(() => new FakeShard(_rig.Props(domain), TestActor)));
        var msg = _rig.Message(domain);
        shard.Tell(msg);
        return msg;
    }

    private static int CountOf(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
