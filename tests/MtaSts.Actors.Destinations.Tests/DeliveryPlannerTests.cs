using MtaSts.Actors.Destinations;

namespace MtaSts.Actors.Destinations.Tests;

public sealed class DeliveryPlannerTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    private static PendingRecipient R(long mid, int rid, int dueSecondsAgo = 0, string domain = "example.com") =>
        new(mid, rid, domain, Now.AddSeconds(-dueSecondsAgo));

    private static string Shape(DeliveryPlan plan) => string.Join(" | ", plan.Connections.Select(c =>
        (c.IsNew ? "new" : $"open{c.ExistingIndex}") + ": " +
        string.Join(" ", c.Transactions.Select(t => $"{t.Mid}[{string.Join(",", t.Recipients.Select(r => r.Rid))}]"))));

    [Fact]
    public void Recipients_of_one_message_share_a_transaction()
    {
        var plan = DeliveryPlanner.Plan([R(1, 0), R(2, 0), R(1, 1), R(1, 2)], new PlanLimits(1), Now);
        Assert.Equal("new: 1[0,1,2] 2[0]", Shape(plan));
        Assert.Equal(4, plan.RecipientsPlanned);
        Assert.Equal(0, plan.DueNotPlanned);
    }

    [Fact]
    public void Oldest_due_first()
    {
        var plan = DeliveryPlanner.Plan([R(1, 0, 10), R(2, 0, 300), R(3, 0, 20)], new PlanLimits(1), Now);
        Assert.Equal("new: 2[0] 3[0] 1[0]", Shape(plan));
    }

    [Fact]
    public void A_message_is_ordered_by_its_oldest_recipient()
    {
        var plan = DeliveryPlanner.Plan([R(1, 0, 10), R(2, 0, 20), R(1, 1, 30)], new PlanLimits(1), Now);
        Assert.Equal("new: 1[1,0] 2[0]", Shape(plan));
        Assert.Equal(Now.AddSeconds(-30), plan.Connections[0].Transactions[0].DueAt);
    }

    [Fact]
    public void Recipients_are_split_at_the_transaction_maximum()
    {
        var pending = Enumerable.Range(0, 5).Select(i => R(1, i)).ToList();
        var plan = DeliveryPlanner.Plan(pending, new PlanLimits(1, MaxRecipientsPerTransaction: 2), Now);
        Assert.Equal("new: 1[0,1] 1[2,3] 1[4]", Shape(plan));
    }

    [Fact]
    public void Messages_per_connection_and_new_connections_are_limited()
    {
        var pending = Enumerable.Range(1, 7).Select(m => R(m, 0, 100 - m)).ToList();
        var plan = DeliveryPlanner.Plan(pending, new PlanLimits(2, MaxMessagesPerConnection: 3), Now);
        Assert.Equal("new: 1[0] 2[0] 3[0] | new: 4[0] 5[0] 6[0]", Shape(plan));
        Assert.Equal(6, plan.RecipientsPlanned);
        Assert.Equal(1, plan.DueNotPlanned);
        Assert.Equal(2, plan.NewConnections);
    }

    [Fact]
    public void Open_connections_are_filled_before_new_ones()
    {
        var pending = Enumerable.Range(1, 6).Select(m => R(m, 0, 100 - m)).ToList();
        var plan = DeliveryPlanner.Plan(pending, new PlanLimits(5, MaxMessagesPerConnection: 2, OpenConnectionCapacities: [1, 0, 2]), Now);
        Assert.Equal("open0: 1[0] | open2: 2[0] 3[0] | new: 4[0] 5[0] | new: 6[0]", Shape(plan));
        Assert.Equal(2, plan.NewConnections);
    }

    [Fact]
    public void Not_yet_due_recipients_wait_and_set_the_next_due_time()
    {
        var pending = new[] { R(1, 0), new PendingRecipient(2, 0, "example.com", Now.AddSeconds(30)), new PendingRecipient(3, 0, "example.com", Now.AddSeconds(10)) };
        var plan = DeliveryPlanner.Plan(pending, new PlanLimits(1), Now);
        Assert.Equal("new: 1[0]", Shape(plan));
        Assert.Equal(Now.AddSeconds(10), plan.NextDueAt);
    }

    [Fact]
    public void Nothing_due()
    {
        var plan = DeliveryPlanner.Plan([new PendingRecipient(1, 0, "example.com", Now.AddMinutes(1))], new PlanLimits(10), Now);
        Assert.Empty(plan.Connections);
        Assert.Equal(0, plan.DueNotPlanned);
        Assert.Equal(Now.AddMinutes(1), plan.NextDueAt);
        var empty = DeliveryPlanner.Plan([], new PlanLimits(10), Now);
        Assert.Equal((0, 0, (DateTimeOffset?)null), (empty.Connections.Count, empty.RecipientsPlanned, empty.NextDueAt));
    }

    [Fact]
    public void No_connection_available_plans_nothing()
    {
        var plan = DeliveryPlanner.Plan([R(1, 0), R(2, 0)], new PlanLimits(0), Now);
        Assert.Empty(plan.Connections);
        Assert.Equal(2, plan.DueNotPlanned);
    }

    [Fact]
    public void Recipient_budget_caps_the_plan()
    {
        var plan = DeliveryPlanner.Plan([R(1, 0, 5), R(1, 1, 5), R(1, 2, 5), R(2, 0, 1)], new PlanLimits(1, RecipientBudget: 2), Now);
        Assert.Equal("new: 1[0,1]", Shape(plan));
        Assert.Equal(2, plan.DueNotPlanned);
        Assert.Empty(DeliveryPlanner.Plan([R(1, 0)], new PlanLimits(1, RecipientBudget: 0), Now).Connections);
    }

    [Fact]
    public void Same_mid_different_domains_are_different_transactions()
    {
        var plan = DeliveryPlanner.Plan([R(1, 0, domain: "a.example.com"), R(1, 1, domain: "b.example.com"), R(1, 2, domain: "a.example.com")], new PlanLimits(1), Now);
        Assert.Equal("new: 1[0,2] 1[1]", Shape(plan));
        Assert.Equal(["a.example.com", "b.example.com"], plan.Connections[0].Transactions.Select(t => t.Domain));
    }

    [Fact]
    public void Later_recipients_of_a_planned_message_join_it_when_message_capacity_is_full()
    {
        // Capacity for one message: MID 1 fills it; MID 2 cannot start, but MID 1's late recipient still joins.
        var plan = DeliveryPlanner.Plan([R(1, 0, 30), R(2, 0, 20), R(1, 1, 10)], new PlanLimits(1, MaxMessagesPerConnection: 1), Now);
        Assert.Equal("new: 1[0,1]", Shape(plan));
        Assert.Equal(1, plan.DueNotPlanned);
    }

    [Fact]
    public void Limits_from_profile()
    {
        var l = PlanLimits.From(new DestinationProfile { MaxMessagesPerConnection = 7, MaxRecipientsPerTransaction = 9 }, 3, 11);
        Assert.Equal(new PlanLimits(3, 7, 9, 11), l);
    }

    [Fact]
    public void Large_queue_is_planned_completely_and_in_order()
    {
        var rng = new Random(3);
        var pending = new List<PendingRecipient>();
        for (var m = 0; m < 20_000; m++)
        {
            var due = Now.AddSeconds(-rng.Next(0, 3600));
            var n = rng.Next(1, 4);
            for (var r = 0; r < n; r++) pending.Add(new PendingRecipient(m, r, "example.com", due));
        }
        var plan = DeliveryPlanner.Plan(pending, new PlanLimits(500, 50), Now);
        var transactions = plan.Connections.SelectMany(c => c.Transactions).ToList();
        Assert.Equal(pending.Count, plan.RecipientsPlanned);
        Assert.Equal(20_000, transactions.Count);
        Assert.All(plan.Connections, c => Assert.InRange(c.Transactions.Count, 1, 50));
        Assert.Equal(400, plan.Connections.Count);
        for (var i = 1; i < transactions.Count; i++) Assert.True(transactions[i - 1].DueAt <= transactions[i].DueAt);
        Assert.Equal(pending.Count, transactions.SelectMany(t => t.Recipients).Select(r => (r.Mid, r.Rid)).Distinct().Count());
    }

    [Fact]
    public void Invalid_limits_throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DeliveryPlanner.Plan([], new PlanLimits(1, MaxMessagesPerConnection: 0), Now));
        Assert.Throws<ArgumentOutOfRangeException>(() => DeliveryPlanner.Plan([], new PlanLimits(1, MaxRecipientsPerTransaction: 0), Now));
    }
}
