using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Tests.Destination;

public sealed class DestinationQueueTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    private static MessageRef Msg(long mid, DateTimeOffset? received = null) => new(mid, "s@a.example", received ?? T0, 100);
    private static RecipientRef[] Rcpts(params int[] rids) => rids.Select(r => new RecipientRef(r, $"u{r}@b.example")).ToArray();

    [Fact]
    public void Enqueue_is_idempotent_per_recipient()
    {
        var q = new DestinationQueue();
        Assert.Equal(2, q.Enqueue(Msg(1), Rcpts(0, 1), T0));
        Assert.Equal(1, q.Enqueue(Msg(1), Rcpts(1, 2), T0));
        Assert.Equal(3, q.RecipientCount);
        Assert.Equal(1, q.MessageCount);
    }

    [Fact]
    public void TakeDue_returns_oldest_due_message_first_and_marks_in_flight()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(2), Rcpts(0), T0.AddSeconds(1));
        q.Enqueue(Msg(1), Rcpts(0, 1), T0);
        var first = q.TakeDue(T0.AddSeconds(5));
        Assert.NotNull(first);
        Assert.Equal(1, first!.Value.Message.Mid);
        Assert.Equal(2, first.Value.Recipients.Count);
        Assert.Equal(2, q.InFlightCount);
        var second = q.TakeDue(T0.AddSeconds(5));
        Assert.Equal(2, second!.Value.Message.Mid);
        Assert.Null(q.TakeDue(T0.AddSeconds(5)));
    }

    [Fact]
    public void TakeDue_ignores_messages_not_yet_due()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(1), Rcpts(0), T0.AddMinutes(1));
        Assert.Null(q.TakeDue(T0));
        Assert.Equal(T0.AddMinutes(1), q.NextDue);
        Assert.False(q.HasDue(T0));
        Assert.True(q.HasDue(T0.AddMinutes(1)));
    }

    [Fact]
    public void TakeDue_splits_a_message_at_the_recipient_limit()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(1), Rcpts(0, 1, 2), T0);
        Assert.Equal(2, q.TakeDue(T0, maxRecipients: 2)!.Value.Recipients.Count);
        Assert.Single(q.TakeDue(T0, maxRecipients: 2)!.Value.Recipients);
    }

    [Fact]
    public void Defer_moves_the_recipient_to_its_next_attempt()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(1), Rcpts(0), T0);
        q.TakeDue(T0);
        q.Defer(1, 0, 1, T0.AddSeconds(60), "4.3.2 - busy");
        Assert.Equal(0, q.InFlightCount);
        Assert.Null(q.TakeDue(T0.AddSeconds(59)));
        Assert.NotNull(q.TakeDue(T0.AddSeconds(60)));
        Assert.Equal(1, q.DeferredCount);
    }

    [Fact]
    public void Complete_removes_recipient_and_empty_message()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(1), Rcpts(0, 1), T0);
        q.TakeDue(T0);
        q.Complete(1, 0);
        Assert.Equal(1, q.RecipientCount);
        q.Complete(1, 1);
        Assert.True(q.IsEmpty);
        Assert.Equal(0, q.InFlightCount);
        Assert.Null(q.NextDue);
    }

    [Fact]
    public void Recovered_retry_records_apply_when_the_spool_redispatches()
    {
        // Journal replay happens before the spool re-dispatch: the retry record must survive until then.
        var q = new DestinationQueue();
        q.Apply(new RecipientsDeferred(7, new[] { 0, 1 }, 3, T0.AddMinutes(10), "4.4.1 - no answer"));
        q.Enqueue(Msg(7), Rcpts(0, 1, 2), T0);
        var now = q.TakeDue(T0);
        Assert.Single(now!.Value.Recipients); // rid 2 is new, due now
        Assert.Equal(2, now.Value.Recipients[0].Ref.Rid);
        var later = q.TakeDue(T0.AddMinutes(10));
        Assert.Equal(new[] { 0, 1 }, later!.Value.Recipients.Select(r => r.Ref.Rid).OrderBy(x => x));
        Assert.All(later.Value.Recipients, r => Assert.Equal(3, r.Attempts));
    }

    [Fact]
    public void Finished_event_forgets_retry_records_and_snapshot_round_trips()
    {
        var q = new DestinationQueue();
        q.Apply(new RecipientsDeferred(7, new[] { 0, 1 }, 1, T0, "x"));
        q.Apply(new RecipientsFinished(7, new[] { 0 }));
        Assert.False(q.HasRetryRecord(7, 0));
        Assert.True(q.HasRetryRecord(7, 1));
        var copy = new DestinationQueue();
        copy.ApplySnapshot(q.ToSnapshot());
        Assert.Equal(1, copy.RetryRecordCount);
        Assert.True(copy.HasRetryRecord(7, 1));
    }

    [Fact]
    public void Live_deferrals_are_retry_records_and_go_into_snapshots()
    {
        // A snapshot replaces the events before it: a deferral made live (not replayed) must be in it, and its final
        // outcome must be journaled (HasRetryRecord), or the record would be lost or linger forever.
        var q = new DestinationQueue();
        q.Enqueue(Msg(1), Rcpts(0, 1), T0);
        q.TakeDue(T0);
        q.Defer(1, 0, 2, T0.AddMinutes(5), "4.2.1 - later", warnings: 1);
        q.Release(1, [1]);
        Assert.True(q.HasRetryRecord(1, 0));
        Assert.False(q.HasRetryRecord(1, 1));
        var record = Assert.Single(q.ToSnapshot().Records);
        Assert.Equal(new RetryRecord(1, 0, 2, T0.AddMinutes(5), "4.2.1 - later", 1), record);

        var restarted = new DestinationQueue();
        restarted.ApplySnapshot(q.ToSnapshot());
        restarted.Enqueue(Msg(1), Rcpts(0, 1), T0);
        Assert.Equal(1, restarted.RetryRecordCount); // moved from the table onto the queued recipient
        Assert.True(restarted.HasRetryRecord(1, 0));
        Assert.Equal(2, restarted.Find(1)!.Get(0)!.Attempts);
        restarted.Apply(new RecipientsFinished(1, [0]));
        Assert.False(restarted.HasRetryRecord(1, 0));
        Assert.Empty(restarted.ToSnapshot().Records);
    }

    [Fact]
    public void Recovered_records_of_mail_no_longer_pending_are_pruned()
    {
        var q = new DestinationQueue();
        q.Apply(new RecipientsDeferred(7, [0, 1], 1, T0, "x"));
        q.Apply(new RecipientsDeferred(8, [0], 1, T0, "x"));
        Assert.Equal(2, q.PruneRetryRecords((mid, rid) => mid == 7 && rid == 1));
        Assert.Equal(1, q.RetryRecordCount);
        Assert.True(q.HasRetryRecord(7, 1));
    }

    [Fact]
    public void Deferrals_are_packed_into_journal_rows_in_order()
    {
        RecipientsDeferred D(long mid) => new(mid, [0], 1, T0, "x");
        var counted = new RecipientsCounted(3, T0);
        var rows = DeferralBatch.Pack([D(1), D(2), D(3), counted, D(4), D(5), D(6), D(7), D(8)], maxItems: 2);
        Assert.Equal(6, rows.Count);
        Assert.Equal([1L, 2L], Assert.IsType<DeferralBatch>(rows[0]).Items.Select(d => d.Mid));
        Assert.Equal(3L, Assert.IsType<RecipientsDeferred>(rows[1]).Mid); // a lone deferral stays a plain event
        Assert.Same(counted, rows[2]);
        Assert.Equal([4L, 5L], Assert.IsType<DeferralBatch>(rows[3]).Items.Select(d => d.Mid));
        Assert.Equal([6L, 7L], Assert.IsType<DeferralBatch>(rows[4]).Items.Select(d => d.Mid));
        Assert.Equal(8L, Assert.IsType<RecipientsDeferred>(rows[5]).Mid);
    }

    [Fact]
    public void A_deferral_batch_applies_like_its_items()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(1), Rcpts(0), T0);
        q.Apply(new DeferralBatch([new RecipientsDeferred(1, [0], 2, T0.AddMinutes(1), "x"), new RecipientsDeferred(9, [3], 4, T0, "y")]));
        Assert.Equal(2, q.Find(1)!.Get(0)!.Attempts);
        Assert.Null(q.TakeDue(T0));
        Assert.True(q.HasRetryRecord(9, 3)); // not queued yet: kept until the spool re-dispatches it
        Assert.Equal(2, q.RetryRecordCount);
    }

    [Fact]
    public void Release_returns_in_flight_recipients_to_the_queue()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(1), Rcpts(0, 1), T0);
        q.TakeDue(T0);
        q.Release(1, new[] { 0, 1 });
        Assert.Equal(0, q.InFlightCount);
        Assert.Equal(2, q.TakeDue(T0)!.Value.Recipients.Count);
    }

    [Fact]
    public void MakeAllDue_pulls_deferred_mail_forward()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(1), Rcpts(0), T0);
        q.TakeDue(T0);
        q.Defer(1, 0, 1, T0.AddHours(1), "x");
        q.MakeAllDue(T0.AddSeconds(1));
        Assert.NotNull(q.TakeDue(T0.AddSeconds(1)));
    }

    [Fact]
    public void Expired_lists_idle_recipients_of_old_messages_only()
    {
        var q = new DestinationQueue();
        q.Enqueue(Msg(1, T0), Rcpts(0, 1), T0);
        q.Enqueue(Msg(2, T0.AddHours(71)), Rcpts(0), T0);
        q.TakeDue(T0, maxRecipients: 1); // mid 1 rid 0 in flight
        var expired = q.Expired(T0.AddHours(72), TimeSpan.FromHours(72)).ToList();
        Assert.Single(expired);
        Assert.Equal((1L, 1), (expired[0].Message.Mid, expired[0].Recipient.Ref.Rid));
    }

    [Fact]
    public void Large_queue_takes_in_due_order()
    {
        var q = new DestinationQueue();
        for (var i = 0; i < 10_000; i++) q.Enqueue(Msg(i), Rcpts(0), T0.AddSeconds(10_000 - i));
        long last = long.MaxValue;
        var n = 0;
        while (q.TakeDue(T0.AddDays(1)) is { } t)
        {
            Assert.True(t.Message.Mid < last);
            last = t.Message.Mid;
            n++;
        }
        Assert.Equal(10_000, n);
    }

    // ---------------- paging: window and refill ----------------

    private static (long, MessageRef?, IReadOnlyList<RecipientRef>)[] ReadBack(IEnumerable<(long Mid, int[] Rids)> batch) =>
        batch.Select(b => (b.Mid, (MessageRef?)Msg(b.Mid), (IReadOnlyList<RecipientRef>)Rcpts(0, 1, 2))).ToArray();

    [Fact]
    public void Messages_beyond_the_window_keep_only_mid_and_rids_and_are_not_due()
    {
        var q = new DestinationQueue(window: 2);
        for (var mid = 1; mid <= 5; mid++) Assert.Equal(1, q.Enqueue(Msg(mid), Rcpts(0), T0));
        Assert.Equal(5, q.MessageCount);
        Assert.Equal(2, q.WindowCount);
        Assert.Equal(3, q.OverflowCount);
        Assert.Equal(5, q.RecipientCount);
        Assert.Equal([1L, 2L], q.Messages.Select(m => m.Message.Mid).Order());
        Assert.Equal(2, q.Due(T0).Count);
        Assert.Null(q.Find(3));
        // Idempotent beyond the window too.
        Assert.Equal(0, q.Enqueue(Msg(3), Rcpts(0), T0));
        Assert.Equal(1, q.Enqueue(Msg(3), Rcpts(1), T0));
        Assert.Equal(6, q.RecipientCount);
    }

    [Fact]
    public void Refill_waits_for_a_quarter_of_the_window_and_takes_the_lowest_mids()
    {
        var q = new DestinationQueue(window: 8);
        for (var mid = 20; mid >= 1; mid--) q.Enqueue(Msg(mid), Rcpts(0), T0);
        Assert.Empty(q.TakeRefill()); // window full
        var window = q.Messages.Select(m => m.Message.Mid).ToArray();
        q.Complete(window[0], 0);
        Assert.Empty(q.TakeRefill()); // 1 free < 8/4
        q.Complete(window[1], 0);
        var batch = q.TakeRefill();
        Assert.Equal([1L, 2L], batch.Select(b => b.Mid));
        Assert.All(batch, b => Assert.Equal([0], b.Rids));
        Assert.Empty(q.TakeRefill()); // one read at a time
        Assert.Equal(18, q.MessageCount);
        Assert.Equal(2, q.Refilled(batch.Select(b => (b.Mid, (MessageRef?)Msg(b.Mid), (IReadOnlyList<RecipientRef>)Rcpts(0))), T0));
        Assert.Equal(8, q.WindowCount);
        Assert.Equal(18, q.RecipientCount);
        Assert.NotNull(q.Find(1));
    }

    [Fact]
    public void Refilled_messages_keep_only_outstanding_rids_and_a_message_gone_from_the_spool_leaves()
    {
        var q = new DestinationQueue(window: 1);
        q.Enqueue(Msg(1), Rcpts(0), T0);
        q.Enqueue(Msg(2), Rcpts(0, 1, 2), T0);
        q.Enqueue(Msg(3), Rcpts(0), T0);
        q.Complete(1, 0);
        var batch = q.TakeRefill();
        Assert.Equal([2L], batch.Select(b => b.Mid));
        q.Complete(2, 1); // finished while its envelope was being read
        Assert.Equal(2, q.Refilled(ReadBack(batch), T0)); // RIDs 0 and 2 come back, not 1
        Assert.Equal([0, 2], q.Find(2)!.Recipients.Select(r => r.Ref.Rid));
        q.Complete(2, 0);
        q.Complete(2, 2);
        batch = q.TakeRefill();
        Assert.Equal(0, q.Refilled([(3, null, [])], T0));
        Assert.True(q.IsEmpty);
        Assert.Equal(0, q.RecipientCount);
    }

    [Fact]
    public void A_failed_read_puts_the_batch_back_and_completion_beyond_the_window_counts()
    {
        var q = new DestinationQueue(window: 1);
        q.Enqueue(Msg(1), Rcpts(0), T0);
        q.EnqueuePaged(2, [0, 1]);
        q.EnqueuePaged(2, [1]);
        Assert.Equal(3, q.RecipientCount);
        q.Complete(1, 0);
        Assert.Equal([2L], q.TakeRefill().Select(b => b.Mid));
        q.RefillFailed();
        Assert.Equal(1, q.OverflowCount);
        q.Complete(2, 0);
        Assert.Equal([1], Assert.Single(q.TakeRefill()).Rids);
        q.Complete(2, 1);
        Assert.True(q.IsEmpty);
        Assert.Equal(0, q.RecipientCount);
    }

    [Fact]
    public void A_recovered_retry_record_applies_when_the_message_enters_the_window()
    {
        var q = new DestinationQueue(window: 1);
        q.Apply(new RecipientsDeferred(2, [0], 3, T0.AddMinutes(10), "4.4.1 refused"));
        q.Enqueue(Msg(1), Rcpts(0), T0);
        q.Enqueue(Msg(2), Rcpts(0), T0);
        Assert.True(q.HasRetryRecord(2, 0));
        q.Complete(1, 0);
        q.Refilled(ReadBack(q.TakeRefill()), T0);
        var r = q.Find(2)!.Recipients.Single();
        Assert.Equal(3, r.Attempts);
        Assert.Equal(T0.AddMinutes(10), r.NextAttempt);
        Assert.Null(q.TakeDue(T0.AddMinutes(5)));
    }

    [Fact]
    public void A_recovered_retry_record_counts_as_deferred_while_its_message_waits_beyond_the_window()
    {
        var q = new DestinationQueue(window: 1);
        q.Apply(new RecipientsDeferred(7, [0], 2, T0.AddMinutes(5), "451 4.3.0 try again later"));
        Assert.Equal(2, q.EnqueuePaged(7, [0, 1]));
        Assert.Equal(2, q.RecipientCount);
        Assert.Equal(1, q.DeferredCount);
        Assert.Equal("451 4.3.0 try again later", q.LastError);
        Assert.Single(q.TakeRefill()); // being read back: still known
        Assert.Equal(1, q.DeferredCount);
    }

    [Fact]
    public void A_new_rid_of_a_message_in_the_window_waits_beyond_it_until_the_message_leaves()
    {
        var q = new DestinationQueue(window: 1);
        q.Enqueue(Msg(1), Rcpts(0), T0);
        Assert.Equal(1, q.EnqueuePaged(1, [0, 1]));
        Assert.Equal(2, q.RecipientCount);
        Assert.Empty(q.TakeRefill()); // its message is in the window
        q.Complete(1, 0);
        var batch = q.TakeRefill();
        Assert.Equal([1], Assert.Single(batch).Rids);
        q.Refilled(ReadBack(batch), T0);
        Assert.Equal([1], q.Find(1)!.Recipients.Select(r => r.Ref.Rid));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DestinationQueue(window: 0));
    }

    [Fact]
    public void TakeForRead_reads_back_named_or_all_messages_beyond_the_window_whatever_the_window_holds()
    {
        var q = new DestinationQueue(window: 1);
        for (var mid = 1; mid <= 4; mid++) q.Enqueue(Msg(mid), Rcpts(0), T0);
        Assert.True(q.Paged(3));
        Assert.False(q.Paged(1));
        Assert.Equal([3L], q.TakeForRead([3, 1, 99]).Select(b => b.Mid));
        q.Refilled(ReadBack(new (long, int[])[] { (3, [0]) }), T0);
        Assert.Equal(2, q.WindowCount); // over the window: the operator acts on it next
        Assert.Equal([2L, 4L], q.TakeForRead(null).Select(b => b.Mid).Order());
        Assert.Equal(2, q.OverflowCount); // being read
        Assert.Equal(4, q.RecipientCount);
    }
}
