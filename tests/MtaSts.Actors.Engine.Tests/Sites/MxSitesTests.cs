using System.Net;
using MtaSts.Actors.Engine.Sites;

namespace MtaSts.Actors.Engine.Tests.Sites;

/// <summary>The node's site bookkeeping: places per MX address (limit-type = mx-ip) and the roll-up pool.</summary>
public sealed class MxSitesTests
{
    private static readonly IPEndPoint Ip1 = new(IPAddress.Parse("192.0.2.1"), 25);
    private static readonly IPEndPoint Ip2 = new(IPAddress.Parse("192.0.2.2"), 25);
    private static readonly SiteKey Key1 = new("mx.example", Ip1, null, "gw.example", null);

    private sealed record Conn(string Name);

    [Fact]
    public async Task Places_at_an_address_are_shared_up_to_the_limit_and_given_in_arrival_order_when_freed()
    {
        var sites = new MxSites<Conn>();
        var a = sites.AcquireAsync(Key1, 2, null, default, out _);
        var b = sites.AcquireAsync(Key1, 2, null, default, out _);
        var other = sites.AcquireAsync(Key1 with { Mx = Ip2 }, 2, null, default, out _); // another address has its own places
        var c = sites.AcquireAsync(Key1, 2, null, default, out _);
        var d = sites.AcquireAsync(Key1, 2, null, default, out _);
        Assert.True(a.IsCompletedSuccessfully && b.IsCompletedSuccessfully && other.IsCompletedSuccessfully);
        Assert.False(c.IsCompleted);
        Assert.Equal(2, sites.OpenAt(Ip1));
        Assert.Equal(2, sites.WaitingAt(Ip1));

        (await a).Slot!.Release();
        Assert.True(c.IsCompletedSuccessfully); // first come, first served
        Assert.False(d.IsCompleted);
        (await a).Slot!.Release(); // a place is released once
        Assert.False(d.IsCompleted);
        Assert.Equal(2, sites.OpenAt(Ip1));
        (await b).Slot!.Release();
        Assert.True(d.IsCompletedSuccessfully);
        (await c).Slot!.Release();
        (await d).Slot!.Release();
        Assert.Equal(0, sites.OpenAt(Ip1));
    }

    [Fact]
    public async Task Without_a_limit_connections_are_only_counted()
    {
        var sites = new MxSites<Conn>();
        var all = Enumerable.Range(0, 5).Select(i => sites.AcquireAsync(Key1, int.MaxValue, null, default, out _)).ToList();
        Assert.All(all, t => Assert.True(t.IsCompletedSuccessfully));
        Assert.Equal(5, sites.OpenAt(Ip1));
        // A limited profile at the same address counts them: it waits until fewer than its limit are open.
        var limited = sites.AcquireAsync(Key1, 4, null, default, out _);
        Assert.False(limited.IsCompleted);
        (await all[0]).Slot!.Release();
        Assert.False(limited.IsCompleted); // 4 open, limit 4
        (await all[1]).Slot!.Release();
        Assert.True(limited.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task A_cancelled_waiter_leaves_the_queue_and_takes_no_place()
    {
        var sites = new MxSites<Conn>();
        var held = sites.AcquireAsync(Key1, 1, null, default, out _);
        using var cts = new CancellationTokenSource();
        var waiting = sites.AcquireAsync(Key1, 1, null, cts.Token, out _);
        cts.Cancel();
        Assert.True(waiting.IsCanceled);
        Assert.Equal(0, sites.WaitingAt(Ip1));
        (await held).Slot!.Release();
        Assert.Equal(0, sites.OpenAt(Ip1));
    }

    [Fact]
    public async Task A_waiter_evicts_the_sessions_parked_at_its_address_and_nothing_parks_while_it_waits()
    {
        var sites = new MxSites<Conn>();
        var slot = (await sites.AcquireAsync(Key1, 1, null, default, out _)).Slot!;
        var parked = new Conn("idle");
        Assert.True(sites.TryPark(new MxSites<Conn>.Parked(Key1, parked, "a.test")));
        var waiting = sites.AcquireAsync(Key1, 1, null, default, out var evicted);
        Assert.Equal([parked], evicted); // the caller closes it, which frees its place
        Assert.Equal(0, sites.ParkedCount);
        Assert.False(sites.TryPark(new MxSites<Conn>.Parked(Key1, new Conn("another"), "c.test")));
        slot.Release();
        Assert.True(waiting.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task A_session_parked_while_a_connection_waits_is_handed_to_it_when_it_can_use_it()
    {
        var sites = new MxSites<Conn>();
        var slot = (await sites.AcquireAsync(Key1, 1, null, default, out _)).Slot!;
        var picky = sites.AcquireAsync(Key1, 1, p => p.Domain == "c.test", default, out _);
        var other = sites.AcquireAsync(Key1 with { HeloName = "other.example" }, 1, _ => true, default, out _); // another site
        var parked = new MxSites<Conn>.Parked(Key1, new Conn("idle"), "a.test");
        Assert.False(sites.TryPark(parked)); // nobody waiting can use it: closed, its place goes to the first waiter
        var fromC = new MxSites<Conn>.Parked(Key1, new Conn("from c"), "c.test");
        Assert.True(sites.TryPark(fromC));
        Assert.Same(fromC, (await picky).Session); // handed over with its place: no new connection, nothing parked
        Assert.Null((await picky).Slot);
        Assert.Equal(0, sites.ParkedCount);
        Assert.False(other.IsCompleted);
        slot.Release();
        Assert.NotNull((await other).Slot);
    }

    [Fact]
    public async Task With_an_opening_limit_a_connection_waits_while_others_open_there_and_gets_a_parked_session_or_the_next_opening()
    {
        var sites = new MxSites<Conn>();
        Task<MxSites<Conn>.Grant> Acquire(SiteKey key) => sites.AcquireAsync(key, int.MaxValue, _ => true, default, out _, openingLimit: 2);
        var a = (await Acquire(Key1)).Slot!;
        var b = (await Acquire(Key1)).Slot!;
        Assert.Equal(2, sites.OpeningAt(Ip1));
        var c = Acquire(Key1);
        var d = Acquire(Key1);
        Assert.NotNull((await Acquire(Key1 with { Mx = Ip2 })).Slot); // another address opens on its own
        Assert.False(c.IsCompleted);
        Assert.Equal(2, sites.WaitingAt(Ip1));

        // a connects: c may open the next connection; a is busy, then idle: parked — handed to d, nothing new opened.
        a.Connected(answered: true);
        Assert.NotNull((await c).Slot);
        Assert.False(d.IsCompleted);
        var idle = new MxSites<Conn>.Parked(Key1, new Conn("a"), "a.test");
        Assert.True(sites.TryPark(idle));
        Assert.Same(idle, (await d).Session);
        Assert.Null((await d).Slot);
        Assert.Equal(0, sites.ParkedCount);
        Assert.Equal(3, sites.OpenAt(Ip1));
        Assert.Equal(2, sites.OpeningAt(Ip1)); // b and c

        // A session parked while the address is not full is not closed for those waiting for an opening, and a new
        // waiter first takes what is parked (no eviction: it is not kept out by the places).
        var e = Acquire(Key1 with { HeloName = "other.example" }); // another site: cannot use the parked one
        var parked = new MxSites<Conn>.Parked(Key1, new Conn("b"), "b.test");
        Assert.True(sites.TryPark(parked));
        var f = sites.AcquireAsync(Key1, int.MaxValue, _ => true, default, out var evicted, openingLimit: 2);
        Assert.Empty(evicted);
        Assert.Same(parked, (await f).Session);
        Assert.False(e.IsCompleted);
        // An opening that ends without a connection (cancelled, or failed after an answer) lets the next one open.
        b.Release();
        Assert.NotNull((await e).Slot);
        Assert.Equal(2, sites.OpeningAt(Ip1));
        a.Release();
        a.Connected(answered: true); // after its release: no effect
        Assert.Equal(2, sites.OpeningAt(Ip1));
    }

    [Fact]
    public async Task A_hand_over_goes_only_to_a_waiting_connection_that_can_use_the_session()
    {
        var sites = new MxSites<Conn>();
        var idle = new MxSites<Conn>.Parked(Key1, new Conn("idle"), "a.test");
        Assert.False(sites.TryHandOver(idle)); // nobody waits: nothing done, not parked either
        Assert.Equal(0, sites.ParkedCount);
        var opening = (await sites.AcquireAsync(Key1, int.MaxValue, _ => true, default, out _, openingLimit: 1)).Slot!;
        var picky = sites.AcquireAsync(Key1, int.MaxValue, p => p.Domain == "c.test", default, out _, openingLimit: 1);
        var any = sites.AcquireAsync(Key1, int.MaxValue, _ => true, default, out _, openingLimit: 1);
        Assert.True(sites.TryHandOver(idle));
        Assert.Same(idle, (await any).Session); // the first that can use it, past one that cannot
        Assert.False(picky.IsCompleted);
        Assert.Equal(0, sites.ParkedCount);
        opening.Connected(answered: true);
        Assert.NotNull((await picky).Slot);
    }

    [Fact]
    public async Task An_address_that_does_not_answer_lifts_the_opening_limit_until_a_connection_there_succeeds()
    {
        var sites = new MxSites<Conn>();
        Task<MxSites<Conn>.Grant> Acquire() => sites.AcquireAsync(Key1, int.MaxValue, _ => true, default, out _, openingLimit: 1);
        var first = (await Acquire()).Slot!;
        var waiting = new[] { Acquire(), Acquire(), Acquire() };
        Assert.All(waiting, t => Assert.False(t.IsCompleted));
        // A dead MX: every waiting destination tries (and fails) now, not one connect timeout after another.
        first.Connected(answered: false);
        first.Release();
        Assert.All(waiting, t => Assert.True(t.IsCompletedSuccessfully));
        Assert.True(Acquire().IsCompletedSuccessfully);
        var slots = await Task.WhenAll(waiting);
        slots[0].Slot!.Connected(answered: true); // it answers again: the limit is back
        Assert.False(Acquire().IsCompleted);
    }

    [Fact]
    public void The_pool_hands_out_the_newest_usable_session_for_the_exact_key_once()
    {
        var sites = new MxSites<Conn>();
        var older = new MxSites<Conn>.Parked(Key1, new Conn("older"), "a.test");
        var newer = new MxSites<Conn>.Parked(Key1, new Conn("newer"), "c.test");
        Assert.True(sites.TryPark(older));
        Assert.True(sites.TryPark(newer));
        // Another source address or EHLO name is another site.
        Assert.Null(sites.TryTake(Key1 with { Source = IPAddress.Parse("198.51.100.7") }, _ => true));
        Assert.Null(sites.TryTake(Key1 with { HeloName = "other.example" }, _ => true));
        // Host names compare without case (DNS).
        Assert.Same(newer, sites.TryTake(Key1 with { MxHost = "MX.Example" }, _ => true));
        Assert.Null(sites.TryTake(Key1, p => p.Domain == "c.test")); // the requirement check refuses the other one
        Assert.True(sites.Remove(older)); // its idle time is over
        Assert.False(sites.Remove(older));
        // The same session parked again by the same domain is another parking: the old idle timer leaves it alone.
        var again = new MxSites<Conn>.Parked(Key1, older.Item, "a.test");
        Assert.True(sites.TryPark(again));
        Assert.False(sites.Remove(new MxSites<Conn>.Parked(Key1, older.Item, "a.test")));
        Assert.Same(again, sites.TryTake(Key1, _ => true));
        Assert.Null(sites.TryTake(Key1, _ => true));
        Assert.Equal(0, sites.ParkedCount);
    }

    [Fact]
    public void Take_all_empties_the_pool_for_the_stop()
    {
        var sites = new MxSites<Conn>();
        sites.TryPark(new MxSites<Conn>.Parked(Key1, new Conn("x"), "a.test"));
        sites.TryPark(new MxSites<Conn>.Parked(Key1 with { Mx = Ip2 }, new Conn("y"), "b.test"));
        Assert.Equal(2, sites.TakeAll().Count);
        Assert.Equal(0, sites.ParkedCount);
    }

    [Fact]
    public async Task A_freed_place_goes_to_the_next_waiter_without_walking_the_whole_queue()
    {
        // 100,000 new destinations behind one MX address (mx-rollup-max-connections) made every release walk the
        // whole queue under the lock: quadratic, the node starved. Places still go in arrival order.
        var sites = new MxSites<Conn>();
        var held = new Queue<SiteSlot>();
        for (var i = 0; i < 20; i++) held.Enqueue((await sites.AcquireAsync(Key1, 20, null, default, out _)).Slot!);
        var waiting = Enumerable.Range(0, 10_000).Select(k => sites.AcquireAsync(Key1, 20, null, default, out _)).ToList();
        Assert.Equal(10_000, sites.WaitingAt(Ip1));
        for (var i = 0; i < 1_000; i++)
        {
            held.Dequeue().Release();
            Assert.True(waiting[i].IsCompletedSuccessfully, $"waiter {i} is next in line");
            Assert.False(waiting[i + 1].IsCompleted);
            held.Enqueue((await waiting[i]).Slot!);
        }
        Assert.Equal(9_000, sites.WaitingAt(Ip1));
        Assert.True(sites.WaitersExamined <= 2_000, $"{sites.WaitersExamined} waiters examined for 1,000 places");
    }

    [Fact]
    public async Task Openings_that_end_let_the_next_waiters_open_without_walking_the_whole_queue()
    {
        var sites = new MxSites<Conn>();
        var opening = new List<SiteSlot>();
        for (var i = 0; i < 5; i++) opening.Add((await sites.AcquireAsync(Key1, 1_000_000, null, default, out _, openingLimit: 5)).Slot!);
        var waiting = Enumerable.Range(0, 10_000).Select(k => sites.AcquireAsync(Key1, 1_000_000, null, default, out _, openingLimit: 5)).ToList();
        for (var i = 0; i < 1_000; i++)
        {
            opening[i].Connected(answered: true); // its attempt is over: one more may open
            Assert.True(waiting[i].IsCompletedSuccessfully);
            Assert.False(waiting[i + 1].IsCompleted);
            opening.Add((await waiting[i]).Slot!);
        }
        Assert.True(sites.WaitersExamined <= 2_000, $"{sites.WaitersExamined} waiters examined for 1,000 openings");
    }

    [Fact]
    public async Task A_waiter_with_a_higher_limit_behind_one_that_cannot_go_still_gets_a_place()
    {
        var sites = new MxSites<Conn>();
        var a = (await sites.AcquireAsync(Key1, 2, null, default, out _)).Slot!;
        (await sites.AcquireAsync(Key1, 2, null, default, out _)).Slot!.Connected(answered: true);
        var low = sites.AcquireAsync(Key1, 2, null, default, out _);   // limit 2: both places taken
        var high = sites.AcquireAsync(Key1, 4, null, default, out _);  // limit 4: waits behind it (arrival order)
        Assert.False(low.IsCompleted);
        Assert.False(high.IsCompleted);
        a.Connected(answered: true);                                    // places are looked at again: the one that fits goes
        Assert.False(low.IsCompleted);
        Assert.True(high.IsCompletedSuccessfully);
        a.Release();
        Assert.False(low.IsCompleted);                                 // the place it took counts too
        (await high).Slot!.Release();
        Assert.True(low.IsCompletedSuccessfully);
    }
}
