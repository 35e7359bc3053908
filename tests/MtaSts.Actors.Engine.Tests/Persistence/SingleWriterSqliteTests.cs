using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Sql.Config;
using LinqToDB;
using LinqToDB.Data;
using MtaSts.Actors.Engine.Persistence;

namespace MtaSts.Actors.Engine.Tests.Persistence;

/// <summary>
/// The single-writer SQLite journal and snapshot store (<see cref="SingleWriterSqliteJournal"/>): an id that never
/// wrote recovers without a query; every id that wrote — before a restart of the actor system (the start-up scan) or
/// after it (added on write) — recovers its events and snapshots. SQL statements are counted with linq2db's trace
/// hook (the plugins' own data layer), by the persistence id among their parameters.
/// </summary>
public sealed class SingleWriterSqliteTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private readonly string _db = Path.Combine(Path.GetTempPath(), "mtasts-swj-" + Guid.NewGuid().ToString("N") + ".db");
    private readonly ConcurrentDictionary<string, int> _queries = new();

    public void Dispose()
    {
        foreach (var f in new[] { _db, _db + "-wal", _db + "-shm" }) File.Delete(f);
    }

    private int Queries(string persistenceId) => _queries.GetValueOrDefault(persistenceId);

    private ActorSystem Start()
    {
        var cs = $"Data Source={_db}";
        var hocon = ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            akka.persistence.journal {
              plugin = "akka.persistence.journal.sql"
              sql { class = "{{SingleWriterSqlite.JournalClass}}", connection-string = "{{cs}}", provider-name = "SQLite.MS", auto-initialize = on }
            }
            akka.persistence.snapshot-store {
              plugin = "akka.persistence.snapshot-store.sql"
              sql { class = "{{SingleWriterSqlite.SnapshotStoreClass}}", connection-string = "{{cs}}", provider-name = "SQLite.MS", auto-initialize = on }
            }
            """);
        // Same database as the HOCON's (the scan reads that one); the options only add the trace hook.
        var data = new DataOptions().UseConnectionString(ProviderName.SQLiteMS, cs).UseTracing(TraceLevel.Info, Count);
        return ActorSystem.Create("swj", BootstrapSetup.Create().WithConfig(hocon).And(new DataOptionsSetup(data)));
    }

    private void Count(TraceInfo info)
    {
        if (info.TraceInfoStep != TraceInfoStep.BeforeExecute || info.Command is null) return;
        foreach (DbParameter p in info.Command.Parameters)
            if (p.Value is string id) _queries.AddOrUpdate(id, 1, (_, n) => n + 1);
    }

    private static async Task<Recorded> StateOf(IActorRef a) => await a.Ask<Recorded>(Get.Instance, Wait);

    [Fact]
    public async Task An_id_never_seen_starts_at_sequence_zero_without_a_query()
    {
        using var system = Start();
        var a = system.ActorOf(Props.Create(() => new Recorder("destination-never.test")));
        var s = await StateOf(a);
        Assert.Empty(s.Events);
        Assert.Equal(0, s.SequenceNr);
        Assert.Equal(0, Queries("destination-never.test"));
        await system.Terminate();
    }

    [Fact]
    public async Task An_actor_that_persisted_stopped_and_restarts_recovers_its_events()
    {
        using var system = Start();
        var a = system.ActorOf(Props.Create(() => new Recorder("destination-known.test")));
        await a.Ask<Done>(new Add("one"), Wait);
        await a.Ask<Done>(new Add("two"), Wait);
        await a.GracefulStop(Wait);

        var before = Queries("destination-known.test");
        var again = system.ActorOf(Props.Create(() => new Recorder("destination-known.test")));
        var s = await StateOf(again);
        Assert.Equal(["one", "two"], s.Events);
        Assert.Equal(2, s.SequenceNr);
        Assert.True(Queries("destination-known.test") > before, "a known id is read from SQLite (and the counter sees it)");
        await system.Terminate();
    }

    [Fact]
    public async Task After_a_restart_of_the_actor_system_ids_written_before_are_recovered()
    {
        using (var first = Start())
        {
            var a = first.ActorOf(Props.Create(() => new Recorder("destination-before.test")));
            await a.Ask<Done>(new Add("one"), Wait);
            await a.Ask<Done>(new Add("two"), Wait);
            await first.Terminate();
        }

        using var second = Start();
        var b = second.ActorOf(Props.Create(() => new Recorder("destination-before.test")));
        var s = await StateOf(b);
        Assert.Equal(["one", "two"], s.Events);
        Assert.Equal(2, s.SequenceNr);
        // The next event continues the sequence (a reused number would be refused by the primary key).
        await b.Ask<Done>(new Add("three"), Wait);
        Assert.Equal(3, (await StateOf(b)).SequenceNr);
        var fresh = second.ActorOf(Props.Create(() => new Recorder("destination-other.test")));
        Assert.Equal(0, (await StateOf(fresh)).SequenceNr);
        Assert.Equal(0, Queries("destination-other.test"));
        await second.Terminate();
    }

    [Fact]
    public async Task A_write_for_a_new_id_then_a_restart_recovers_it()
    {
        using (var first = Start())
        {
            var a = first.ActorOf(Props.Create(() => new Recorder("destination-new.test")));
            Assert.Equal(0, (await StateOf(a)).SequenceNr); // unknown at start: answered without SQL
            await a.Ask<Done>(new Add("one"), Wait);
            await a.GracefulStop(Wait);
            // Restart of the entity in the same system: the id was added when it wrote.
            var again = first.ActorOf(Props.Create(() => new Recorder("destination-new.test")));
            Assert.Equal(["one"], (await StateOf(again)).Events);
            await first.Terminate();
        }

        using var second = Start();
        var b = second.ActorOf(Props.Create(() => new Recorder("destination-new.test")));
        Assert.Equal(["one"], (await StateOf(b)).Events);
        await second.Terminate();
    }

    [Fact]
    public async Task A_snapshot_with_its_events_deleted_is_recovered_after_a_restart_and_the_sequence_continues()
    {
        using (var first = Start())
        {
            var a = first.ActorOf(Props.Create(() => new Recorder("destination-snap.test")));
            foreach (var e in new[] { "one", "two", "three" }) await a.Ask<Done>(new Add(e), Wait);
            await a.Ask<Done>(Snap.Instance, Wait); // snapshot at 3, then events up to 3 deleted
            await first.Terminate();
        }

        using var second = Start();
        var b = second.ActorOf(Props.Create(() => new Recorder("destination-snap.test")));
        var s = await StateOf(b);
        Assert.Equal(["one", "two", "three"], s.Events);
        Assert.Equal(3, s.SequenceNr);
        await b.Ask<Done>(new Add("four"), Wait);
        Assert.Equal(4, (await StateOf(b)).SequenceNr);
        await second.Terminate();
    }

    [Fact]
    public void Another_provider_is_refused_naming_the_key()
    {
        var ex = Assert.Throws<ConfigurationException>(() =>
            SingleWriterSqlite.Require("akka.persistence.journal.sql", "PostgreSQL.15", null));
        Assert.Contains("akka.persistence.journal.sql.provider-name = PostgreSQL.15", ex.Message, StringComparison.Ordinal);
    }

    private sealed record Add(string Event);
    private sealed record Get { public static readonly Get Instance = new(); }
    private sealed record Snap { public static readonly Snap Instance = new(); }
    private sealed record Done { public static readonly Done Instance = new(); }
    private sealed record Recorded(string[] Events, long SequenceNr);

    private sealed class Recorder : UntypedPersistentActor
    {
        private readonly List<string> _events = [];
        private IActorRef? _snapshotAsker;

        public Recorder(string persistenceId) => PersistenceId = persistenceId;

        public override string PersistenceId { get; }

        protected override void OnRecover(object message)
        {
            switch (message)
            {
                case SnapshotOffer { Snapshot: string s }:
                    _events.Clear();
                    _events.AddRange(s.Split('|'));
                    break;
                case string e: _events.Add(e); break;
            }
        }

        protected override void OnCommand(object message)
        {
            switch (message)
            {
                case Add add:
                    var sender = Sender;
                    Persist(add.Event, e =>
                    {
                        _events.Add(e);
                        sender.Tell(Done.Instance);
                    });
                    break;
                case Get: Sender.Tell(new Recorded(_events.ToArray(), LastSequenceNr)); break;
                case Snap:
                    _snapshotAsker = Sender;
                    SaveSnapshot(string.Join('|', _events));
                    break;
                case SaveSnapshotSuccess ok: DeleteMessages(ok.Metadata.SequenceNr); break;
                case DeleteMessagesSuccess: _snapshotAsker?.Tell(Done.Instance); break;
                case SaveSnapshotFailure or DeleteMessagesFailure: _snapshotAsker?.Tell(new Status.Failure(new IOException(message.ToString()))); break;
            }
        }
    }
}
