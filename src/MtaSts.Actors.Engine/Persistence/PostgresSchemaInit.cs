using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using MtaSts.Actors.Logging;
using Npgsql;

namespace MtaSts.Actors.Engine.Persistence;

/// <summary>
/// PostgreSQL: the SQL plugins create their tables (journal, snapshots, the shard coordinator's journal and snapshots)
/// on their first start (<c>auto-initialize</c>). Nodes started at the same moment on an empty database raced in that
/// <c>CREATE TABLE IF NOT EXISTS</c> — PostgreSQL answers the loser with 23505 on <c>pg_type</c> and the plugin failed its
/// initialization (then restarted; seen in the cluster tests). So each node, before its own actor system starts, takes a
/// PostgreSQL advisory lock, starts the plugins in a local actor system of its own (same configuration, no cluster) and
/// waits until each answers a request — which it does only once its tables exist — then releases the lock: the first
/// node creates the tables, the others find them. The lock is a session lock: a node that dies holding it frees it.
/// </summary>
public static class PostgresSchemaInit
{
    public const string LockName = "mtasts akka persistence schema";
    private const string ProbeId = "mtasts-schema-probe";

    private static readonly string[] Journals = ["akka.persistence.journal.sql", "akka.persistence.journal.sharding"];
    private static readonly string[] SnapshotStores = ["akka.persistence.snapshot-store.sql", "akka.persistence.snapshot-store.sharding"];

    /// <summary>Creates the persistence tables under the lock. Failures are logged, never thrown: the plugins' own
    /// initialization (and its restart on the race) remains, as before.</summary>
    /// <param name="hoconText">The node's whole HOCON as text (the local system appends its overrides to it).</param>
    public static async Task RunAsync(Config hocon, string hoconText, MailLog log, TimeSpan timeout, CancellationToken ct)
    {
        var cs = hocon.GetString("akka.persistence.journal.sql.connection-string", "");
        var started = DateTime.UtcNow;
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(timeout);
        NpgsqlConnection? conn = null;
        try
        {
            // Not pooled: closing a pooled connection keeps its session, and with it the lock, alive in the pool.
            conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(cs) { Pooling = false }.ConnectionString);
            await conn.OpenAsync(bound.Token).ConfigureAwait(false);
            await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_lock(hashtext(@n))", conn))
            {
                lockCmd.Parameters.AddWithValue("n", LockName);
                lockCmd.CommandTimeout = 0; // bounded by the token, not by Npgsql's 30 s default
                await lockCmd.ExecuteNonQueryAsync(bound.Token).ConfigureAwait(false);
            }
            var waited = DateTime.UtcNow - started;
            var plugins = await InitializePluginsAsync(hocon, hoconText, bound.Token).ConfigureAwait(false);
            log.Info("persistence_schema", $"Persistence tables ready in PostgreSQL ({plugins} plugins; waited {waited.TotalMilliseconds:0} ms " +
                $"for the schema lock, {(DateTime.UtcNow - started - waited).TotalMilliseconds:0} ms to initialize)", ("plugins", plugins));
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException or TimeoutException or AskTimeoutException or InvalidOperationException)
        {
            if (ct.IsCancellationRequested) throw;
            log.Warning("persistence_schema", $"Persistence tables not prepared under the schema lock ({ex.GetType().Name}: {ex.Message}); " +
                "the journal creates them on its own start (nodes starting together may then log one failed journal initialization, retried)");
        }
        finally
        {
            // Closing the (unpooled) session releases its advisory lock.
            if (conn is not null) await conn.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Starts every configured SQL journal and snapshot store in a local actor system and waits for an answer
    /// from each (a plugin answers only after its initialization); returns how many answered.</summary>
    private static async Task<int> InitializePluginsAsync(Config hocon, string hoconText, CancellationToken ct)
    {
        const string local = """

            akka.actor.provider = local
            akka.loglevel = WARNING
            akka.persistence.journal.auto-start-journals = []
            akka.persistence.snapshot-store.auto-start-snapshot-stores = []
            """;
        var config = hoconText.Length > 0 ? ConfigurationFactory.ParseString(hoconText + local) : ConfigurationFactory.ParseString(local).WithFallback(hocon);
        var system = ActorSystem.Create("mtasts-schema", config);
        try
        {
            var persistence = Akka.Persistence.Persistence.Instance.Apply(system);
            var probes = new List<Task<object>>();
            // A journal answers a replay (RecoverySuccess to the reply-to) and a snapshot store a load only after its
            // initialization; a replay of an id that never wrote reads nothing.
            foreach (var id in Journals.Where(config.HasPath))
                probes.Add(persistence.JournalFor(id).Ask<object>(replyTo => new ReplayMessages(1, 0, 0, ProbeId, replyTo), null, ct));
            foreach (var id in SnapshotStores.Where(config.HasPath))
                probes.Add(persistence.SnapshotStoreFor(id).Ask<object>(new LoadSnapshot(ProbeId, SnapshotSelectionCriteria.Latest, long.MaxValue), null, ct));
            foreach (var answer in await Task.WhenAll(probes).ConfigureAwait(false))
            {
                if (answer is ReplayMessagesFailure rf) throw new InvalidOperationException($"journal: {rf.Cause.Message}", rf.Cause);
                if (answer is LoadSnapshotFailed sf) throw new InvalidOperationException($"snapshot store: {sf.Cause.Message}", sf.Cause);
            }
            return probes.Count;
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }
}
