using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Tests.Destination;

/// <summary>Decide is a table: (queued state, command, bounce profile, now) → changes + effects. Apply is the only
/// way the state changes, live and on replay.</summary>
public sealed class DestinationStateTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
    private static readonly BounceProfile Bounce = BounceProfile.Default with
    {
        InitialRetryInterval = TimeSpan.FromMinutes(1), MaxRetryInterval = TimeSpan.FromMinutes(10), RetryJitter = 0, MaxRetries = 2,
    };
    private static readonly DestinationSettings Settings = new(DestinationProfile.Default, Bounce);
    private static readonly MessageRef Msg = new(7, "s@a.example", T0, 100);
    private static readonly RecipientRef[] Rcpts = [new(0, "u0@b.example"), new(1, "u1@b.example")];

    private static DestinationState Queued(int attempts = 0)
    {
        var s = new DestinationState(Dom("b.example"));
        s.Queue.Enqueue(Msg, Rcpts, T0);
        if (attempts > 0) s.Apply(new RecipientsDeferred(Msg.Mid, [0, 1], attempts, T0, "4.0.0 - earlier"));
        Assert.NotNull(s.TakeDue(T0, 100));
        return s;
    }

    private static RecipientOutcome Outcome(int rid, RecipientOutcomeKind kind) =>
        new(rid, kind, kind == RecipientOutcomeKind.Permanent ? "5.1.1 - no such user" : "4.2.1 - busy", kind == RecipientOutcomeKind.Permanent ? "5.1.1" : "4.2.1");

    public static TheoryData<string, RecipientOutcomeKind[], int, string> Table => new()
    {
        // name, outcome per RID (missing = not reported), attempts so far, expected changes
        { "both delivered", [RecipientOutcomeKind.Delivered, RecipientOutcomeKind.Delivered], 0, "completed[0,1]" },
        { "one bounced", [RecipientOutcomeKind.Delivered, RecipientOutcomeKind.Permanent], 0, "completed[0,1]" },
        { "transient: deferred together", [RecipientOutcomeKind.Transient, RecipientOutcomeKind.Transient], 0, "deferred[0,1]#1@+60s" },
        { "second transient: doubled wait", [RecipientOutcomeKind.Transient, RecipientOutcomeKind.Transient], 1, "deferred[0,1]#2@+120s" },
        { "retries exhausted: bounced 5.4.7", [RecipientOutcomeKind.Transient, RecipientOutcomeKind.Transient], 2, "completed[0,1]" },
        { "one not reported: released", [RecipientOutcomeKind.Delivered], 0, "released[1] completed[0]" },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Decide_outcomes(string name, RecipientOutcomeKind[] kinds, int attempts, string expected)
    {
        var s = Queued(attempts);
        var outcomes = kinds.Select((k, rid) => Outcome(rid, k)).ToArray();
        var d = s.Decide(new OutcomesReported(3, Msg, Rcpts, outcomes), Settings, T0);

        Assert.True(expected == Describe(d.Changes), $"{name}: {Describe(d.Changes)}");
        var finish = d.Effects.OfType<FinishRecipients>().SingleOrDefault();
        var bounced = kinds.Count(k => k == RecipientOutcomeKind.Permanent) + (expected.Contains("completed") && attempts == 2 ? 2 : 0);
        Assert.Equal(bounced, finish?.Bounced.Count ?? 0);
        if (attempts == 2) Assert.All(finish!.Bounced, b => Assert.Equal("5.4.7", b.Item2.Status));
        // Deciding changed nothing; applying does.
        Assert.Equal(2, s.Queue.InFlightCount);
        foreach (var c in d.Changes) s.Apply(c);
        Assert.Equal(0, s.Queue.InFlightCount);
    }

    [Fact]
    public void Applying_the_journaled_deferral_live_and_on_replay_gives_the_same_retry_record()
    {
        var live = Queued();
        var d = live.Decide(new OutcomesReported(3, Msg, Rcpts, [Outcome(0, RecipientOutcomeKind.Transient), Outcome(1, RecipientOutcomeKind.Transient)]), Settings, T0);
        foreach (var c in d.Changes) live.Apply(c);

        var replayed = new DestinationState(Dom("b.example"));
        foreach (var e in d.Journaled) replayed.Apply(e);
        replayed.Queue.Enqueue(Msg, Rcpts, T0.AddHours(1)); // the spool re-dispatches after recovery

        Assert.Equal(live.ToSnapshot().Records.OrderBy(r => r.Rid), replayed.ToSnapshot().Records.OrderBy(r => r.Rid));
    }

    [Fact]
    public void Unreachable_defers_every_due_recipient_and_expiry_bounces_old_ones()
    {
        var s = new DestinationState(Dom("b.example"));
        s.Queue.Enqueue(Msg, Rcpts, T0);
        var d = s.Decide(new DestinationUnreachable(RecipientOutcomeKind.Transient, "4.4.1 - no answer", "4.4.1"), Settings, T0);
        Assert.Equal("deferred[0,1]#1@+60s", Describe(d.Changes));

        var late = T0 + Bounce.MaxTimeInQueue;
        var expired = s.Decide(new ExpirySweep(), Settings, late);
        Assert.Equal("completed[0,1]", Describe(expired.Changes));
        Assert.All(expired.Effects.OfType<FinishRecipients>().Single().Bounced, b => Assert.Equal("5.4.7", b.Item2.Status));
        Assert.Same(Decision.None, s.Decide(new ExpirySweep(), Settings, T0));
    }

    private static string Describe(IEnumerable<IDestinationChange> changes) => string.Join(" ", changes.Select(c => c switch
    {
        RecipientsDeferred d => $"deferred[{string.Join(",", d.Rids)}]#{d.Attempts}@+{(d.NextAttemptUtc - T0).TotalSeconds}s",
        RecipientsCompleted c2 => $"completed[{string.Join(",", c2.Rids)}]",
        RecipientsReleased r => $"released[{string.Join(",", r.Rids)}]",
        _ => c.GetType().Name,
    }));
}
