using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Engine.Persistence;
using MtaSts.Actors.Logging;
using MtaSts.Actors.TestInfra.Postgres;
using Npgsql;

namespace MtaSts.Actors.Engine.Tests.Cluster;

/// <summary>
/// Nodes starting together on an empty PostgreSQL database: the persistence tables are created by one node under an
/// advisory lock while the others wait for it (before, they raced in CREATE TABLE IF NOT EXISTS and one journal failed
/// its initialization).
/// </summary>
public sealed class PostgresSchemaInitTests
{
    private static readonly string[] Tables = ["journal", "snapshot", "sharding_journal", "sharding_snapshot"];

    private static GatewayConfig NodeConfig(string cs) =>
        GatewayConfig.Load(GatewayConfig.DefaultFiles().Append(PostgresCluster.ConfigFile), PostgresCluster.NodeHocon(cs, 0, []));

    private static async Task<long> TablesPresentAsync(PostgresInstance pg) =>
        Convert.ToInt64(await pg.ScalarAsync("mtasts",
            $"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ({string.Join(", ", Tables.Select(t => $"'{t}'"))})"));

    [Fact]
    public async Task A_node_waits_for_the_schema_lock_then_creates_every_persistence_table()
    {
        await using var pg = await PostgresInstance.StartAsync();
        var cs = await pg.CreateDatabaseAsync("mtasts");
        var config = NodeConfig(cs);

        // Another node holds the schema lock.
        await using var other = new NpgsqlConnection(cs);
        await other.OpenAsync();
        await using (var take = new NpgsqlCommand("SELECT pg_advisory_lock(hashtext(@n))", other))
        {
            take.Parameters.AddWithValue("n", PostgresSchemaInit.LockName);
            await take.ExecuteNonQueryAsync();
        }

        var text = new StringWriter();
        var log = new MailLog(TextWriter.Synchronized(text));
        var init = PostgresSchemaInit.RunAsync(config.Hocon, config.HoconText, log, TimeSpan.FromSeconds(60), CancellationToken.None);
        await Task.Delay(1500);
        Assert.False(init.IsCompleted, "the node went on while another held the schema lock");
        Assert.Equal(0, await TablesPresentAsync(pg));

        await using (var release = new NpgsqlCommand("SELECT pg_advisory_unlock(hashtext(@n))", other))
        {
            release.Parameters.AddWithValue("n", PostgresSchemaInit.LockName);
            await release.ExecuteNonQueryAsync();
        }
        await init.WaitAsync(TimeSpan.FromSeconds(60));
        log.Flush();
        Assert.Contains("Persistence tables ready in PostgreSQL (4 plugins", text.ToString());
        Assert.Equal(Tables.Length, await TablesPresentAsync(pg));
    }

    [Fact]
    public async Task Nodes_starting_together_on_an_empty_database_all_find_the_tables()
    {
        await using var pg = await PostgresInstance.StartAsync();
        var cs = await pg.CreateDatabaseAsync("mtasts");
        var config = NodeConfig(cs);
        var logs = Enumerable.Range(0, 3).Select(_ => new StringWriter()).ToArray();
        var mailLogs = logs.Select(w => new MailLog(TextWriter.Synchronized(w))).ToArray();

        await Task.WhenAll(mailLogs.Select(l => PostgresSchemaInit.RunAsync(config.Hocon, config.HoconText, l, TimeSpan.FromSeconds(90), CancellationToken.None)))
            .WaitAsync(TimeSpan.FromSeconds(120));

        foreach (var l in mailLogs) l.Flush();
        Assert.All(logs, w => Assert.Contains("Persistence tables ready in PostgreSQL (4 plugins", w.ToString()));
        Assert.All(logs, w => Assert.DoesNotContain("not prepared", w.ToString()));
        Assert.Equal(Tables.Length, await TablesPresentAsync(pg));
    }
}
