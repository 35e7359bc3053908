using MtaSts.Actors.TestInfra.Postgres;

namespace MtaSts.Actors.Spool.Postgres.Tests;

/// <summary>The database goes away under a running spool: nothing may be reported as stored.</summary>
public sealed class DatabaseDownTests
{
    [Fact]
    public async Task With_the_database_stopped_appends_and_done_marks_throw_and_never_succeed()
    {
        var pg = await PostgresInstance.StartAsync();
        var cs = await pg.CreateDatabaseAsync("spool");
        var options = new PostgresSpoolOptions(cs) { CommandTimeout = TimeSpan.FromSeconds(5), MidBlockSize = 2 };
        await using var spool = await PostgresSpool.OpenAsync(options);
        var icids = spool.ConnectionIds("ICID");
        await spool.AppendAsync(1, Messages.Envelope("a@a.test"), Messages.Body(10, 1));

        await pg.DisposeAsync(); // pg_ctl stop -m immediate, data directory removed

        var appends = Enumerable.Range(2, 20).Select(i => Task.Run(() => spool.AppendAsync(i, Messages.Envelope("a@a.test"), Messages.Body(10, i)))).ToArray();
        foreach (var t in appends) await Assert.ThrowsAsync<PostgresSpoolException>(() => t);
        Assert.Equal(1, spool.Appends);
        await Assert.ThrowsAsync<PostgresSpoolException>(async () => await spool.MarkDoneAsync(1, [0]));
        // A body this spool appended is still served from its memory (immutable once committed); any other needs the database.
        Assert.Equal(Messages.Body(10, 1), (await spool.ReadBodyAsync(1)).ToArray());
        await Assert.ThrowsAsync<PostgresSpoolException>(async () => await spool.ReadBodyAsync(7));
        await Assert.ThrowsAsync<PostgresSpoolException>(() => spool.OutstandingAsync("a.test"));
        Assert.Throws<PostgresSpoolException>(() => spool.Mids.Next());
        // Connection ids go on past their leased block (a connection must not fail for its id).
        var handed = Enumerable.Range(0, 5).Select(_ => icids.Next()).ToArray();
        Assert.Equal(handed.Length, handed.Distinct().Count());
    }

    [Fact]
    public async Task Opening_against_an_unreachable_database_throws()
    {
        var port = MtaSts.Actors.TestInfra.Net.LoopbackPort.Free();
        var options = new PostgresSpoolOptions($"Host=127.0.0.1;Port={port};Username=postgres;Timeout=3") { CommandTimeout = TimeSpan.FromSeconds(5) };
        await Assert.ThrowsAnyAsync<Exception>(() => PostgresSpool.OpenAsync(options));
    }
}
