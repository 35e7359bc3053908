using Akka.Actor;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.TestInfra.Postgres;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Engine.Tests.Cluster;

/// <summary>
/// One gateway on the shipped hocon/cluster-postgres.conf, persisting to a real (Debian) PostgreSQL: delivery, and a
/// deferral whose retry state survives a restart in the PostgreSQL journal.
/// </summary>
public sealed class PostgresSingleNodeTests
{
    [Fact]
    public async Task Delivers_and_deferred_mail_survives_a_restart_with_its_retry_state_in_postgres()
    {
        await using var pg = await PostgresInstance.StartAsync();
        var cs = await pg.CreateDatabaseAsync("mtasts");
        await using var mx = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
        var refuse = 1; // 1: RCPT to the retry domain gets 451
        mx.Script = (phase, arg, _) =>
            phase == SmtpPhase.Rcpt && Volatile.Read(ref refuse) == 1 && arg.Contains("retry.test", StringComparison.OrdinalIgnoreCase)
                ? "451 4.3.0 try again later" : null;
        // Long enough that the retry is still pending across the restart; short enough to be delivered in the test.
        var hocon = PostgresCluster.NodeHocon(cs, 0, [], """
            mtasts.bounce-profiles.default { initial-retry-interval = 8s
              max-retry-interval = 8s }
            """);
        await using var gw = await PostgresCluster.StartNodeAsync(mx.Port, hocon);

        // 1. Plain delivery through the PostgreSQL-backed sharding.
        await gw.SendAsync("app@sender.test", ["a@now.test"], "now");
        var got = await gw.ReceivedAsync(mx, 1, PostgresCluster.Wait);
        Assert.Equal("a@now.test", Assert.Single(Assert.Single(got).Recipients).Address);

        // 2. Deferral: persisted as a RecipientsDeferred event in the PostgreSQL journal.
        await gw.SendAsync("app@sender.test", ["later@retry.test"], "later");
        await gw.WaitForLineAsync(l => l.Contains("Delayed: DCID") && l.Contains("later@retry.test"), PostgresCluster.Wait);
        var rows = await WaitForJournalRowsAsync(pg, "destination-retry.test");
        Assert.True(rows >= 1, "no journal row for destination-retry.test");
        Assert.Equal(0L, Convert.ToInt64(await pg.ScalarAsync("mtasts", "SELECT count(*) FROM journal WHERE persistence_id = 'destination-now.test'")));

        // 3. Restart on the same data dir and database; the receiver accepts from now on.
        await gw.StopAsync();
        Volatile.Write(ref refuse, 0);
        await gw.RestartAsync($"\"*\" = \"127.0.0.1:{mx.Port}\"", hocon);
        // Before the retry is due, the recovered entity knows the attempt and its error: only the journal has these
        // (the spool re-dispatch after a restart carries the envelope, not the retry state).
        var status = await gw.Gateway.Region.Ask<DestinationStatus>(new GetDestinationStatus(Dom("retry.test")), TimeSpan.FromSeconds(30));
        Assert.Equal(1, status.QueuedRecipients);
        Assert.Equal(1, status.DeferredRecipients); // from the journal record, also while the envelope is being read back
        Assert.Contains("451", status.LastError ?? "");
        // The retry time shows once the message is back in the queue's window (its envelope is read from the spool).
        for (var until = DateTime.UtcNow.AddSeconds(30); status.NextAttempt is null && DateTime.UtcNow < until; await Task.Delay(100))
            status = await gw.Gateway.Region.Ask<DestinationStatus>(new GetDestinationStatus(Dom("retry.test")), TimeSpan.FromSeconds(30));
        Assert.Contains("451", status.LastError ?? "");
        Assert.NotNull(status.NextAttempt);

        var all = await gw.ReceivedAsync(mx, 2, PostgresCluster.Wait);
        Assert.Contains(all, m => m.Recipients.Any(r => r.Address == "later@retry.test") && m.Text.Contains("Subject: later"));
        await gw.WaitForLineAsync(l => l.Contains("Message finished MID"), PostgresCluster.Wait, count: 1);
        await Task.Delay(300);
        Assert.Equal(2, mx.Messages.Count); // no duplicates
        Assert.Equal(0, gw.Gateway.Spool.Count);
    }

    private static async Task<long> WaitForJournalRowsAsync(PostgresInstance pg, string persistenceId, long atLeast = 1)
    {
        var deadline = DateTime.UtcNow + PostgresCluster.Wait;
        while (true)
        {
            var n = Convert.ToInt64(await pg.ScalarAsync("mtasts",
                $"SELECT count(*) FROM journal WHERE persistence_id = '{persistenceId}'"));
            if (n >= atLeast || DateTime.UtcNow > deadline) return n;
            await Task.Delay(100);
        }
    }
}
