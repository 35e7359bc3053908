namespace MtaSts.Actors.Destinations;

/// <summary>A recipient waiting for delivery. <paramref name="Attempts"/> = attempts made so far.</summary>
public readonly record struct PendingRecipient(long Mid, int Rid, string Domain, DateTimeOffset NextAttemptAt, int Attempts = 0);

/// <summary>The limits one planning round works within.</summary>
/// <param name="NewConnections">Connections that may be opened now (see <see cref="ConnectionBudget"/>).</param>
/// <param name="MaxMessagesPerConnection">Messages (transactions) per new connection.</param>
/// <param name="MaxRecipientsPerTransaction">RCPTs per transaction (RFC 5321 §4.5.3.1.8: ≥ 100 must be accepted).</param>
/// <param name="RecipientBudget">Recipients that may go now (see <see cref="RecipientRateLimiter"/>); null = no limit.</param>
/// <param name="OpenConnectionCapacities">Connections already open and idle, each with the number of messages it may
/// still carry; they are filled first (vendor: "mail goes first over connections that are already open").</param>
public sealed record PlanLimits(
    int NewConnections,
    int MaxMessagesPerConnection = 50,
    int MaxRecipientsPerTransaction = 100,
    long? RecipientBudget = null,
    IReadOnlyList<int>? OpenConnectionCapacities = null)
{
    public static PlanLimits From(DestinationProfile profile, int newConnections, long? recipientBudget = null,
        IReadOnlyList<int>? openConnectionCapacities = null) =>
        new(newConnections, profile.MaxMessagesPerConnection, profile.MaxRecipientsPerTransaction, recipientBudget, openConnectionCapacities);
}

/// <summary>One SMTP transaction: one MAIL FROM, these RCPTs (same MID, same domain), one DATA.</summary>
public sealed record PlannedTransaction(long Mid, string Domain, IReadOnlyList<PendingRecipient> Recipients)
{
    /// <summary>Oldest due time among the recipients (the order key of the transaction).</summary>
    public DateTimeOffset DueAt => Recipients[0].NextAttemptAt;
}

/// <summary>The transactions for one connection. <see cref="ExistingIndex"/> is the index into
/// <see cref="PlanLimits.OpenConnectionCapacities"/> for an open connection, null for a connection to open.</summary>
public sealed record PlannedConnection(int? ExistingIndex, IReadOnlyList<PlannedTransaction> Transactions)
{
    public bool IsNew => ExistingIndex is null;
}

/// <param name="Connections">Work per connection, existing connections first, then new ones.</param>
/// <param name="RecipientsPlanned">Recipients in the plan (what to take from the rate limiter).</param>
/// <param name="DueNotPlanned">Due recipients left for a later round (no connection, message or recipient budget).</param>
/// <param name="NextDueAt">Earliest due time among recipients not yet due (when to plan again); null if none.</param>
public sealed record DeliveryPlan(IReadOnlyList<PlannedConnection> Connections, int RecipientsPlanned, int DueNotPlanned, DateTimeOffset? NextDueAt)
{
    public static DeliveryPlan Nothing(int dueNotPlanned, DateTimeOffset? nextDueAt) => new([], 0, dueNotPlanned, nextDueAt);
    public int NewConnections => Connections.Count(c => c.IsNew);
}

/// <summary>
/// Turns a destination's pending recipients into connection batches. Pure and O(n log n): one sort of the due
/// recipients by (due time, MID, domain, RID), then one pass. Recipients of one MID and domain share a transaction
/// (RFC 5321 §3.3: one message, many RCPTs) up to the per-transaction maximum; transactions are ordered by their
/// oldest recipient (oldest first, so a long queue cannot starve old mail); each connection carries up to the
/// per-connection message maximum; existing idle connections are filled before new ones are opened.
/// </summary>
public static class DeliveryPlanner
{
    private sealed class DueOrder : IComparer<PendingRecipient>
    {
        public static readonly DueOrder Instance = new();

        public int Compare(PendingRecipient x, PendingRecipient y)
        {
            var c = x.NextAttemptAt.UtcTicks.CompareTo(y.NextAttemptAt.UtcTicks);
            if (c != 0) return c;
            c = x.Mid.CompareTo(y.Mid);
            if (c != 0) return c;
            c = string.CompareOrdinal(x.Domain, y.Domain);
            return c != 0 ? c : x.Rid.CompareTo(y.Rid);
        }
    }

    public static DeliveryPlan Plan(IReadOnlyCollection<PendingRecipient> pending, PlanLimits limits, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(pending);
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.MaxMessagesPerConnection, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.MaxRecipientsPerTransaction, 1);

        // 1. Split due from not-yet-due (O(n)).
        var due = new PendingRecipient[pending.Count];
        var dueCount = 0;
        DateTimeOffset? nextDue = null;
        foreach (var r in pending)
        {
            if (r.NextAttemptAt <= now) due[dueCount++] = r;
            else if (nextDue is null || r.NextAttemptAt < nextDue) nextDue = r.NextAttemptAt;
        }
        if (dueCount == 0) return DeliveryPlan.Nothing(0, nextDue);

        var capacities = limits.OpenConnectionCapacities ?? [];
        var slots = Math.Max(0, limits.NewConnections);
        var messageCapacity = capacities.Sum(c => (long)Math.Max(0, c)) + (long)slots * limits.MaxMessagesPerConnection;
        var recipientBudget = limits.RecipientBudget is { } b ? Math.Max(0, b) : long.MaxValue;
        if (messageCapacity == 0 || recipientBudget == 0) return DeliveryPlan.Nothing(dueCount, nextDue);

        // 2. Oldest first (O(n log n)). Ties on the due time keep a MID's recipients together and in RID order.
        Array.Sort(due, 0, dueCount, DueOrder.Instance);

        // 3. Group into transactions in first-seen order. A MID's recipients normally share a due time and are
        //    adjacent after the sort; when they are not (different retry times), the dictionary joins them.
        var transactions = new List<List<PendingRecipient>>();
        var open = new Dictionary<(long Mid, string Domain), int>(); // → index of the MID's transaction still filling
        var planned = 0;
        for (var i = 0; i < dueCount && recipientBudget > 0; i++)
        {
            var r = due[i];
            var key = (r.Mid, r.Domain);
            if (open.TryGetValue(key, out var t) && transactions[t].Count < limits.MaxRecipientsPerTransaction)
            {
                transactions[t].Add(r);
            }
            else
            {
                if (transactions.Count >= messageCapacity) continue; // no room for another message; later recipients of open MIDs still fit
                open[key] = transactions.Count;
                transactions.Add([r]);
            }
            planned++;
            recipientBudget--;
        }

        // 4. Deal transactions out to connections: existing ones first, then new ones, in order.
        var connections = new List<PlannedConnection>();
        var next = 0;
        for (var i = 0; i < capacities.Count && next < transactions.Count; i++)
        {
            var take = Math.Min(Math.Max(0, capacities[i]), transactions.Count - next);
            if (take == 0) continue;
            connections.Add(new PlannedConnection(i, Slice(transactions, next, take)));
            next += take;
        }
        for (var i = 0; i < slots && next < transactions.Count; i++)
        {
            var take = Math.Min(limits.MaxMessagesPerConnection, transactions.Count - next);
            connections.Add(new PlannedConnection(null, Slice(transactions, next, take)));
            next += take;
        }
        return new DeliveryPlan(connections, planned, dueCount - planned, nextDue);
    }

    private static PlannedTransaction[] Slice(List<List<PendingRecipient>> transactions, int start, int count)
    {
        var result = new PlannedTransaction[count];
        for (var i = 0; i < count; i++)
        {
            var rcpts = transactions[start + i];
            result[i] = new PlannedTransaction(rcpts[0].Mid, rcpts[0].Domain, rcpts);
        }
        return result;
    }
}
