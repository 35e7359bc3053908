using Akka.Persistence;
using Akka.Persistence.Sql;
using Akka.Persistence.Sql.Config;
using Akka.Persistence.Sql.Snapshot;
using Config = Akka.Configuration.Config;

namespace MtaSts.Actors.Engine.Persistence;

/// <summary>
/// The SQL snapshot store for the embedded single-node SQLite mode: LoadSnapshot for a persistence id that never
/// saved a snapshot answers "none" without a query; every other id is the shipped <see cref="SqlSnapshotStore"/>'s.
/// See <see cref="SingleWriterSqliteJournal"/>.
/// </summary>
public sealed class SingleWriterSqliteSnapshotStore : SqlSnapshotStore
{
    private const string Path = "akka.persistence.snapshot-store.sql";
    private readonly KnownPersistenceIds _known;

    public SingleWriterSqliteSnapshotStore(Config snapshotConfig) : base(snapshotConfig)
    {
        var config = new SnapshotConfig(snapshotConfig.WithFallback(SqlPersistence.DefaultSnapshotConfiguration));
        SingleWriterSqlite.Require(Path, config.ProviderName, config.TableConfig.SchemaName);
        var table = config.TableConfig.SnapshotTable;
        _known = new KnownPersistenceIds(config.ConnectionString, [(table.Name, table.ColumnNames.PersistenceId)]);
    }

    protected override void PreStart()
    {
        base.PreStart(); // stacks the SQL plugin's own initialization (tables) under the scan
        _known.StartLoad(Self);
        BecomeStacked(m => _known.WhileLoading(m, Stash, UnbecomeStacked));
    }

    protected override void PreRestart(Exception reason, object message)
    {
        Self.Tell(_known.HandOver(), Self);
        base.PreRestart(reason, message);
    }

    protected override bool ReceivePluginInternal(object message) => _known.Absorb(message) || base.ReceivePluginInternal(message);

    protected override Task<SelectedSnapshot?> LoadAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken) =>
        _known.MayHave(persistenceId) ? base.LoadAsync(persistenceId, criteria, cancellationToken) : Task.FromResult<SelectedSnapshot?>(null);

    protected override Task SaveAsync(SnapshotMetadata metadata, object snapshot, CancellationToken cancellationToken)
    {
        _known.Add(metadata.PersistenceId);
        return base.SaveAsync(metadata, snapshot, cancellationToken);
    }
}
