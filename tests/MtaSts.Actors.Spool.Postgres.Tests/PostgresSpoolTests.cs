using System.Collections.Concurrent;

namespace MtaSts.Actors.Spool.Postgres.Tests;

public sealed class PostgresSpoolTests(PostgresFixture db) : IClassFixture<PostgresFixture>
{
    private async Task<bool> IsOutstandingAsync(string prefix, long mid, int rid) =>
        (bool)(await db.ScalarAsync($"SELECT EXISTS (SELECT 1 FROM {prefix}_recipients WHERE mid = {mid} AND rid = {rid} AND NOT done)"))!;

    [Fact]
    public async Task Round_trip_of_a_small_body_and_a_10MB_spilled_body_stored_once_across_domains()
    {
        var prefix = db.NewPrefix();
        var spill = Directory.CreateTempSubdirectory("pgspool-spill-").FullName;
        try
        {
            await using var spool = await PostgresSpool.OpenAsync(db.Options(prefix, spill));
            Assert.Equal(spill, spool.SpillDirectory);

            var small = Messages.Body(1000, 1);
            var big = Messages.Body(10 * 1024 * 1024, 2);
            using var writer = new MessageBodyWriter(spool.SpillDirectory, memoryLimit: 64 * 1024);
            for (int i = 0; i < big.Length; i += 100_000) await writer.WriteAsync(big.AsMemory(i, Math.Min(100_000, big.Length - i)));
            using var bigBody = await writer.CompleteAsync();
            Assert.True(bigBody.IsSpilled);

            var env = Messages.Envelope("a@one.test", "b@two.test", "c@three.test");
            var m1 = await spool.AppendAsync(1, env, MessageBody.FromBytes(small));
            var m2 = await spool.AppendAsync(2, Messages.Envelope("x@one.test"), bigBody);
            Assert.Equal(1000, m1.BodyLength);
            Assert.Equal(big.Length, m2.BodyLength);

            Assert.Equal(small, (await spool.ReadBodyAsync(1)).ToArray());
            Assert.Equal(big, (await spool.ReadBodyAsync(2)).ToArray());
            await Assert.ThrowsAsync<KeyNotFoundException>(async () => await spool.ReadBodyAsync(3));

            // One body per message however many domains it spans.
            Assert.Equal(2L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
            Assert.Equal(4L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_recipients"));
            Assert.Equal((long)small.Length + big.Length, await db.ScalarAsync($"SELECT sum(length(body)) FROM {prefix}_messages"));

            var two = Assert.Single(await spool.OutstandingAsync("two.test"));
            Assert.Equal(env, two.Message.Envelope with { Recipients = env.Recipients }); // record equality except the list
            Assert.Equal(env.Recipients, two.Message.Envelope.Recipients);
            Assert.Equal([1], two.OutstandingRids);
        }
        finally
        {
            Directory.Delete(spill, true);
        }
    }

    [Fact]
    public async Task Bodies_appended_here_are_read_from_memory_until_finished_and_the_database_holds_the_same_bytes()
    {
        var prefix = db.NewPrefix();
        await using var node = await PostgresSpool.OpenAsync(db.Options(prefix) with { DomainKey = d => d == "unkeyed.test" ? null : d });
        await using var other = await PostgresSpool.OpenAsync(db.Options(prefix));
        await using var uncached = await PostgresSpool.OpenAsync(db.Options(prefix) with { BodyCacheBytes = 0 });
        var bodies = Enumerable.Range(1, 20).ToDictionary(i => (long)i, i => Messages.Body(2000 + i, i));
        await Task.WhenAll(bodies.Select(b => node.AppendAsync(b.Key, Messages.Envelope("a@a.test", "b@unkeyed.test"), MessageBody.FromBytes(b.Value))));

        foreach (var (mid, body) in bodies)
        {
            Assert.Equal(body, (await node.ReadBodyAsync(mid)).ToArray());
            Assert.Equal(body, (await other.ReadBodyAsync(mid)).ToArray()); // the one-round-trip insert stored the same bytes
        }
        Assert.Equal(20, node.BodyCacheHits);
        Assert.Equal(0, node.BodyCacheMisses);
        Assert.Equal(20, other.BodyCacheMisses);
        Assert.True(node.BodyCacheBytes > 40_000);
        // The unkeyed recipient is stored (NULL domain) but no owner loads it; the message waits for it.
        Assert.Equal(20L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_recipients WHERE domain IS NULL"));
        Assert.Equal(20, (await node.OutstandingAsync("a.test")).Count);

        Assert.False(await node.MarkDoneAsync(1, [0]));
        Assert.True(await node.MarkDoneAsync(1, [1]));
        await Assert.ThrowsAsync<KeyNotFoundException>(async () => await node.ReadBodyAsync(1)); // left the cache with its message
        Assert.Equal(bodies[2], (await uncached.ReadBodyAsync(2)).ToArray());
        Assert.Equal(1, uncached.BodyCacheMisses);
        Assert.Equal(0, uncached.BodyCacheBytes);
    }

    [Fact]
    public async Task The_body_cache_keeps_the_newest_bodies_within_its_budget_and_skips_large_ones()
    {
        var prefix = db.NewPrefix();
        await using var spool = await PostgresSpool.OpenAsync(db.Options(prefix) with { BodyCacheBytes = 16_000 });
        for (int i = 1; i <= 20; i++) await spool.AppendAsync(i, Messages.Envelope("a@a.test"), Messages.Body(2000, i));
        await spool.AppendAsync(21, Messages.Envelope("a@a.test"), Messages.Body(5000, 21)); // > a quarter of the budget
        Assert.True(spool.BodyCacheBytes is > 0 and <= 16_000, $"{spool.BodyCacheBytes} bytes cached");
        for (int i = 1; i <= 21; i++) Assert.Equal(Messages.Body(i == 21 ? 5000 : 2000, i), (await spool.ReadBodyAsync(i)).ToArray());
        Assert.Equal(8, spool.BodyCacheHits);   // 13..20: the newest 8 × 2,000 bytes
        Assert.Equal(13, spool.BodyCacheMisses); // 1..12 evicted, 21 never cached
    }

    [Fact]
    public async Task Concurrent_appends_are_group_committed_and_all_durable()
    {
        var prefix = db.NewPrefix();
        await using var spool = await PostgresSpool.OpenAsync(db.Options(prefix));
        const int n = 300;
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = Enumerable.Range(1, n).Select(i => Task.Run(async () =>
        {
            await start.Task;
            return await spool.AppendAsync(i, Messages.Envelope($"r{i}@d{i % 7}.test"), Messages.Body(2000, i));
        })).ToArray();
        start.SetResult();
        var results = await Task.WhenAll(tasks);

        Assert.Equal(Enumerable.Range(1, n).Select(i => (long)i), results.Select(r => r.Mid).Order());
        Assert.Equal(n, spool.Appends);
        Assert.True(spool.AppendCommits < n / 2, $"{spool.AppendCommits} commits for {n} concurrent appends: not group-committed");
        Assert.Equal((long)n, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
        Assert.Equal(n, spool.Count);
        Assert.True(spool.HighestMid >= n, $"HighestMid {spool.HighestMid} below the {n} MIDs stored");
    }

    [Fact]
    public async Task A_failed_commit_fails_every_append_of_the_batch_and_stores_none_of_them()
    {
        var prefix = db.NewPrefix();
        await using var spool = await PostgresSpool.OpenAsync(db.Options(prefix));
        // Refused at COMMIT time (deferred constraint trigger): the COPYs went through, the transaction does not.
        await db.ScalarAsync($"""
            CREATE FUNCTION {prefix}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
            CREATE CONSTRAINT TRIGGER {prefix}_refuse AFTER INSERT ON {prefix}_messages DEFERRABLE INITIALLY DEFERRED
                FOR EACH ROW EXECUTE FUNCTION {prefix}_refuse();
            """);
        var tasks = Enumerable.Range(1, 40).Select(i => Task.Run(() => spool.AppendAsync(i, Messages.Envelope($"r@d{i}.test"), Messages.Body(500, i)))).ToArray();
        foreach (var t in tasks)
        {
            var ex = await Assert.ThrowsAsync<PostgresSpoolException>(() => t);
            Assert.Contains("refused at commit", ex.Message);
        }
        Assert.Equal(0, spool.Appends);
        Assert.True(spool.FailedBatches >= 1);
        Assert.Equal(0L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
        Assert.Equal(0L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_recipients"));

        await db.ScalarAsync($"DROP TRIGGER {prefix}_refuse ON {prefix}_messages");
        await spool.AppendAsync(1, Messages.Envelope("r@d1.test"), Messages.Body(500, 1));
        Assert.Equal(1L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
    }

    [Fact]
    public async Task A_failed_done_mark_commit_throws_and_changes_nothing()
    {
        var prefix = db.NewPrefix();
        await using var spool = await PostgresSpool.OpenAsync(db.Options(prefix));
        await spool.AppendAsync(1, Messages.Envelope("a@a.test", "b@b.test"), Messages.Body(10, 1));
        await spool.AppendAsync(2, Messages.Envelope("a@a.test"), Messages.Body(10, 2));
        // Refused at COMMIT time: every statement of the batch succeeded, the transaction does not.
        await db.ScalarAsync($"""
            CREATE FUNCTION {prefix}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
            CREATE CONSTRAINT TRIGGER {prefix}_refuse AFTER DELETE ON {prefix}_recipients DEFERRABLE INITIALLY DEFERRED
                FOR EACH ROW EXECUTE FUNCTION {prefix}_refuse();
            """);
        var marks = new[] { spool.MarkDoneAsync(1, [0, 1]).AsTask(), spool.MarkDoneAsync(2, [0]).AsTask() };
        foreach (var t in marks) Assert.Contains("refused at commit", (await Assert.ThrowsAsync<PostgresSpoolException>(() => t)).Message);
        Assert.Equal(0, spool.FinishedMessages);
        Assert.Equal(2L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
        Assert.Equal(3L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_recipients WHERE NOT done"));
        Assert.Equal(3L, await db.ScalarAsync($"SELECT sum(outstanding) FROM {prefix}_messages"));

        await db.ScalarAsync($"DROP TRIGGER {prefix}_refuse ON {prefix}_recipients");
        Assert.True(await spool.MarkDoneAsync(1, [0, 1]));
        Assert.True(await spool.MarkDoneAsync(2, [0]));
        Assert.Equal(0L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
    }

    [Fact]
    public async Task A_MID_already_stored_fails_only_that_append()
    {
        var prefix = db.NewPrefix();
        await using var spool = await PostgresSpool.OpenAsync(db.Options(prefix));
        await spool.AppendAsync(5, Messages.Envelope("a@a.test"), Messages.Body(10, 1));
        var tasks = Enumerable.Range(1, 10).Select(i => Task.Run(() => spool.AppendAsync(i, Messages.Envelope("a@a.test"), Messages.Body(10, i)))).ToArray();
        for (int i = 0; i < tasks.Length; i++)
        {
            if (i + 1 == 5) await Assert.ThrowsAsync<InvalidOperationException>(() => tasks[i]);
            else Assert.Equal(i + 1, (await tasks[i]).Mid);
        }
        Assert.Equal(10L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
        Assert.Equal(Messages.Body(10, 1), (await spool.ReadBodyAsync(5)).ToArray()); // the first one kept
    }

    [Fact]
    public async Task MarkDone_is_idempotent_and_finishes_once_then_deletes_the_message()
    {
        var prefix = db.NewPrefix();
        await using var spool = await PostgresSpool.OpenAsync(db.Options(prefix));
        await spool.AppendAsync(1, Messages.Envelope("a@a.test", "b@b.test", "c@a.test"), Messages.Body(100, 1));

        Assert.False(await spool.MarkDoneAsync(1, [0]));
        Assert.False(await spool.MarkDoneAsync(1, [0]));
        Assert.False(await spool.MarkDoneAsync(1, [0, 0]));
        Assert.False(await IsOutstandingAsync(prefix, 1, 0));
        Assert.True(await IsOutstandingAsync(prefix, 1, 1));
        Assert.Equal(2, await db.ScalarAsync($"SELECT outstanding FROM {prefix}_messages WHERE mid = 1"));
        Assert.False(await spool.MarkDoneAsync(1, [0, 1]));
        Assert.Equal(1, await db.ScalarAsync($"SELECT outstanding FROM {prefix}_messages WHERE mid = 1"));
        Assert.False(await spool.MarkDoneAsync(1, [99])); // unknown RID: nothing to count
        Assert.True(await spool.MarkDoneAsync(1, [2, 0]));
        Assert.False(await spool.MarkDoneAsync(1, [2]));
        Assert.False(await spool.MarkDoneAsync(1, [0, 1, 2]));
        Assert.False(await spool.MarkDoneAsync(42, [0])); // unknown message

        Assert.Equal(0L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
        Assert.Equal(0L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_recipients"));
        Assert.Equal(1, spool.FinishedMessages);
        await Assert.ThrowsAsync<KeyNotFoundException>(async () => await spool.ReadBodyAsync(1));
        Assert.False(await IsOutstandingAsync(prefix, 1, 2));
    }

    [Fact]
    public async Task Two_nodes_finishing_different_domains_of_one_message_concurrently_finish_it_exactly_once()
    {
        var prefix = db.NewPrefix();
        await using var node1 = await PostgresSpool.OpenAsync(db.Options(prefix));
        await using var node2 = await PostgresSpool.OpenAsync(db.Options(prefix));
        const int messages = 300;
        for (int mid = 1; mid <= messages; mid++)
            await (mid % 2 == 0 ? node1 : node2).AppendAsync(mid,
                Messages.Envelope("a1@alpha.test", "b1@beta.test", "a2@alpha.test", "b2@beta.test"), Messages.Body(50, mid));

        var finishes = new ConcurrentDictionary<long, int>();
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task Node(PostgresSpool spool, int[] rids, bool reverse)
        {
            await start.Task;
            var order = Enumerable.Range(1, messages).Select(i => (long)i);
            if (reverse) order = order.Reverse(); // opposite lock order across nodes on purpose
            var marks = order.Select(async mid =>
            {
                // Each node marks its domain twice (a redelivered outcome), each RID on its own too.
                var results = await Task.WhenAll(spool.MarkDoneAsync(mid, rids).AsTask(), spool.MarkDoneAsync(mid, [rids[0]]).AsTask(),
                    spool.MarkDoneAsync(mid, rids).AsTask());
                foreach (var r in results) if (r) finishes.AddOrUpdate(mid, 1, (_, c) => c + 1);
            }).ToArray();
            await Task.WhenAll(marks);
        }
        var t1 = Task.Run(() => Node(node1, [0, 2], reverse: false));
        var t2 = Task.Run(() => Node(node2, [1, 3], reverse: true));
        start.SetResult();
        await Task.WhenAll(t1, t2);

        Assert.Equal(messages, finishes.Count);
        Assert.All(finishes, kv => Assert.Equal(1, kv.Value));
        Assert.Equal(messages, node1.FinishedMessages + node2.FinishedMessages);
        Assert.Equal(0L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
        Assert.Equal(0L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_recipients"));
        Assert.True(node1.DoneCommits < node1.DoneMarks, "done-marks are group-committed");
    }

    [Fact]
    public async Task OutstandingAsync_lists_only_that_domains_outstanding_RIDs_and_DomainsAsync_counts_them()
    {
        var prefix = db.NewPrefix();
        // The gateway's key: a normalised name; "unrouted.test" has none (stored, never listed by domain).
        var options = db.Options(prefix) with { DomainKey = d => d == "unrouted.test" ? null : "key:" + d };
        await using var spool = await PostgresSpool.OpenAsync(options);
        await spool.AppendAsync(10, Messages.Envelope("a0@a.test", "b1@b.test", "a2@A.TEST", "u3@unrouted.test"), Messages.Body(10, 10));
        await spool.AppendAsync(11, Messages.Envelope("b0@b.test"), Messages.Body(10, 11));
        await spool.AppendAsync(12, Messages.Envelope("c0@c.test", "a1@a.test"), Messages.Body(10, 12));

        var a = await spool.OutstandingAsync("key:a.test");
        Assert.Equal([10L, 12L], a.Select(m => m.Message.Mid));
        Assert.Equal([0, 2], a[0].OutstandingRids);
        Assert.Equal([1], a[1].OutstandingRids);
        Assert.Equal(4, a[0].Message.Envelope.Recipients.Count);
        Assert.Equal(10, a[0].Message.BodyLength);
        var b = await spool.OutstandingAsync("key:b.test");
        Assert.Equal([(10L, new[] { 1 }), (11L, new[] { 0 })], b.Select(m => (m.Message.Mid, m.OutstandingRids.ToArray())));
        Assert.Empty(await spool.OutstandingAsync("a.test")); // stored under the key, not re-derived
        Assert.Empty(await spool.OutstandingAsync("unrouted.test"));

        Assert.Equal([("key:a.test", 3), ("key:b.test", 2), ("key:c.test", 1)], await spool.DomainsAsync());

        Assert.False(await spool.MarkDoneAsync(10, [0]));
        Assert.False(await spool.MarkDoneAsync(12, [1]));
        var a2 = Assert.Single(await spool.OutstandingAsync("key:a.test"));
        Assert.Equal(10, a2.Message.Mid);
        Assert.Equal([2], a2.OutstandingRids);
        Assert.Equal([("key:a.test", 1), ("key:b.test", 2), ("key:c.test", 1)], await spool.DomainsAsync());

        // The keyless recipient keeps its message in the spool and is seen by Recover and still outstanding in its table.
        Assert.False(await spool.MarkDoneAsync(10, [1, 2]));
        Assert.True(await IsOutstandingAsync(prefix, 10, 3));
        Assert.Empty(await spool.OutstandingAsync("key:a.test"));
        var recovered = spool.Recover();
        Assert.Equal([10L, 11L, 12L], recovered.Select(r => r.Message.Mid));
        Assert.Equal([3], recovered[0].OutstandingRids);
        Assert.True(await spool.MarkDoneAsync(10, [3]));
    }

    [Fact]
    public async Task MIDs_are_unique_across_two_instances_under_concurrency()
    {
        var prefix = db.NewPrefix();
        await using var node1 = await PostgresSpool.OpenAsync(db.Options(prefix) with { MidBlockSize = 50 });
        await using var node2 = await PostgresSpool.OpenAsync(db.Options(prefix) with { MidBlockSize = 7 }); // the sequence decides
        Assert.Equal(50, node2.MidBlockSize);
        var all = new ConcurrentBag<long>();
        var threads = Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            var mids = t % 2 == 0 ? node1.Mids : node2.Mids;
            long last = 0;
            for (int i = 0; i < 1000; i++)
            {
                long id = mids.Next();
                Assert.True(id > last, "increasing within a thread");
                last = id;
                all.Add(id);
            }
        })).ToArray();
        await Task.WhenAll(threads);
        Assert.Equal(8000, all.Count);
        Assert.Equal(8000, all.Distinct().Count());
        Assert.True(Math.Max(node1.HighestMid, node2.HighestMid) >= all.Max());

        // A later node starts above everything leased so far.
        await using var node3 = await PostgresSpool.OpenAsync(db.Options(prefix));
        Assert.True(node3.HighestMid >= all.Max());
        Assert.True(node3.Mids.Next() > all.Max());
    }

    [Fact]
    public async Task A_second_instance_opened_later_sees_everything_that_was_committed()
    {
        var prefix = db.NewPrefix();
        var bodies = new Dictionary<long, byte[]>();
        long highest;
        await using (var first = await PostgresSpool.OpenAsync(db.Options(prefix)))
        {
            var tasks = new List<Task>();
            for (int i = 0; i < 50; i++)
            {
                long mid = first.Mids.Next();
                bodies[mid] = Messages.Body(300 + i, i);
                tasks.Add(first.AppendAsync(mid, Messages.Envelope($"a@x{i % 3}.test", $"b@y{i % 2}.test"), MessageBody.FromBytes(bodies[mid])));
            }
            await Task.WhenAll(tasks);
            foreach (var mid in bodies.Keys.Take(10)) await first.MarkDoneAsync(mid, [0]);
            foreach (var mid in bodies.Keys.Take(5)) Assert.True(await first.MarkDoneAsync(mid, [1]));
            highest = bodies.Keys.Max();
        }

        await using var second = await PostgresSpool.OpenAsync(db.Options(prefix));
        Assert.Equal(45, second.Count);
        Assert.True(second.HighestMid >= highest);
        var recovered = second.Recover();
        Assert.Equal(bodies.Keys.Skip(5).Order(), recovered.Select(r => r.Message.Mid));
        foreach (var r in recovered)
        {
            Assert.Equal(bodies.Keys.Take(10).Contains(r.Message.Mid) ? [1] : new[] { 0, 1 }, r.OutstandingRids);
            Assert.Equal(bodies[r.Message.Mid], (await second.ReadBodyAsync(r.Message.Mid)).ToArray());
            Assert.Equal(Messages.Received, r.Message.Envelope.ReceivedAt);
        }
        Assert.True(second.Mids.Next() > highest);
    }

    [Fact]
    public async Task Cancelled_before_the_writer_picks_it_up_is_not_stored_and_table_prefix_is_validated()
    {
        Assert.Throws<ArgumentException>(() => (db.Options("x; DROP TABLE y")).Validate());
        var prefix = db.NewPrefix();
        await using var spool = await PostgresSpool.OpenAsync(db.Options(prefix));
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => spool.AppendAsync(1, Messages.Envelope("a@a.test"), Messages.Body(1, 1), cts.Token));
        await Assert.ThrowsAsync<ArgumentException>(() => spool.AppendAsync(2,
            new Envelope("s@x.test", [new Recipient(0, "a@a.test"), new Recipient(0, "b@b.test")], Messages.Received), Messages.Body(1, 1)));
        Assert.Equal(0L, await db.ScalarAsync($"SELECT count(*) FROM {prefix}_messages"));
    }
}

/// <summary>ICIDs and DCIDs of cluster nodes come from leased blocks: two nodes never hand out the same id, and an id
/// is handed out even while the database cannot lease (a connection must not fail for its id).</summary>
public sealed class ConnectionIdTests(PostgresFixture db) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task Two_nodes_hand_out_distinct_connection_ids()
    {
        var prefix = db.NewPrefix();
        await using var node1 = await PostgresSpool.OpenAsync(db.Options(prefix) with { MidBlockSize = 3 });
        await using var node2 = await PostgresSpool.OpenAsync(db.Options(prefix) with { MidBlockSize = 3 });
        var a = node1.ConnectionIds("ICID");
        var b = node2.ConnectionIds("ICID");
        var c = node1.ConnectionIds("DCID");
        var ids = new List<long>();
        for (int i = 0; i < 20; i++) { ids.Add(a.Next()); ids.Add(b.Next()); ids.Add(c.Next()); ids.Add(node2.Mids.Next()); }
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }
}
