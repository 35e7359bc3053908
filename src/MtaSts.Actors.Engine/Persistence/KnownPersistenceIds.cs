using System.IO.Hashing;
using System.Runtime.InteropServices;
using Akka.Actor;
using Microsoft.Data.Sqlite;

namespace MtaSts.Actors.Engine.Persistence;

/// <summary>
/// The persistence ids a single-writer SQLite store holds rows for: read once when the store actor starts (one
/// <c>SELECT DISTINCT</c> per table), then every id the actor writes is added. An id not in the set has nothing
/// stored, so recovery can be answered without SQL. Only true while this actor is the database's only writer: the
/// gateway's embedded SQLite mode (the data directory is locked to one process, the connection strings point into
/// it). Owned by one store actor and touched only on its thread: Akka calls ReadHighestSequenceNrAsync /
/// WriteMessagesAsync / LoadAsync / SaveAsync synchronously from the actor's receive (through the circuit breaker,
/// which invokes the body before its first await) — the same property the shipped SqlWriteJournal relies on for its
/// write-in-progress map. Kept as 64-bit hashes, not strings: the set only grows (an id that wrote stays known, so its
/// sequence numbers are never reused), and 100,000 destination ids as strings were ≈ 5 MiB of an idle node's heap; a
/// hash collision can only make <see cref="MayHave"/> say "ask the database" for a new id, never the reverse.
/// </summary>
public sealed class KnownPersistenceIds
{
    private readonly HashSet<ulong> _ids = new();
    private readonly string _connectionString;
    private readonly IReadOnlyList<(string Table, string Column)> _sources;

    /// <param name="sources">Tables and their persistence-id column; a table that does not exist yet holds nothing.</param>
    public KnownPersistenceIds(string connectionString, IReadOnlyList<(string Table, string Column)> sources)
    {
        _connectionString = connectionString;
        _sources = sources;
    }

    /// <summary>The scan's result (or failure), told to the store actor that started it.</summary>
    public sealed record Loaded(KnownPersistenceIds Owner, IReadOnlyCollection<ulong>? Ids, Exception? Error) : INoSerializationVerificationNeeded;

    /// <summary>A restarting store hands its set to its next incarnation: a write the old one started may still
    /// commit after the new one's scan.</summary>
    public sealed record HandedOver(IReadOnlyCollection<ulong> Ids) : INoSerializationVerificationNeeded;

    public int Count => _ids.Count;

    /// <summary>False: nothing was ever stored under this id (no query needed). True: ask the database.</summary>
    public bool MayHave(string persistenceId) => _ids.Contains(Hash(persistenceId));

    public void Add(string persistenceId) => _ids.Add(Hash(persistenceId));

    private void AddAll(IEnumerable<ulong> hashes) => _ids.UnionWith(hashes);

    private static ulong Hash(string persistenceId) => XxHash64.HashToUInt64(MemoryMarshal.AsBytes(persistenceId.AsSpan()));

    public HandedOver HandOver() => new(_ids.ToArray());

    /// <summary>The store actor's behaviour while the scan runs: the scan's answer fills the set, then the actor
    /// unbecomes and unstashes; a hand-over or a previous incarnation's scan is consumed; everything else waits in the
    /// stash (an id must not be answered "empty" before it is known).</summary>
    public bool WhileLoading(object message, IStash stash, Action unbecome)
    {
        switch (message)
        {
            case Loaded l when l.Owner == this:
                if (l.Ids is null) throw new ApplicationException("Reading the persistence ids of the SQLite store failed.", l.Error);
                AddAll(l.Ids);
                unbecome();
                stash.UnstashAll();
                break;
            case Loaded: break;
            case HandedOver h: AddAll(h.Ids); break;
            default: stash.Stash(); break;
        }
        return true;
    }

    /// <summary>After loading: a late hand-over is merged, a stale scan dropped; false for the store's own messages.</summary>
    public bool Absorb(object message)
    {
        switch (message)
        {
            case HandedOver h: AddAll(h.Ids); return true;
            case Loaded: return true;
            default: return false;
        }
    }

    /// <summary>Runs the scan off the actor's thread and tells <paramref name="self"/> a <see cref="Loaded"/>.</summary>
    public void StartLoad(IActorRef self) =>
        Task.Run(Scan).PipeTo(self, success: ids => new Loaded(this, ids, null), failure: ex => new Loaded(this, null, ex));

    private List<ulong> Scan()
    {
        var ids = new List<ulong>();
        using var c = new SqliteConnection(_connectionString);
        c.Open();
        foreach (var (table, column) in _sources)
        {
            using var exists = c.CreateCommand();
            exists.CommandText = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $t";
            exists.Parameters.AddWithValue("$t", table);
            if (exists.ExecuteScalar() is null) continue; // auto-initialize creates it in parallel: no rows yet
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT DISTINCT {Quote(column)} FROM {Quote(table)}";
            using var r = cmd.ExecuteReader();
            while (r.Read()) ids.Add(Hash(r.GetString(0)));
        }
        return ids;
    }

    private static string Quote(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
