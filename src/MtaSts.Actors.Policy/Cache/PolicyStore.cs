using MtaSts.Actors.Dns;
using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;
using MtaSts.Actors.Policy.Parsing;

namespace MtaSts.Actors.Policy.Cache;

/// <summary>A cached policy. <see cref="ExpiresAt"/> = <see cref="FetchedAt"/> + max_age (RFC 8461 §3.3: max_age counts
/// from the fetch). <see cref="LastChecked"/> = last time a resolution used or re-validated the entry.</summary>
public sealed record CachedPolicy(string Domain, string PolicyId, string PolicyText, StsPolicy Policy,
    DateTimeOffset FetchedAt, DateTimeOffset ExpiresAt, DateTimeOffset LastChecked)
{
    public bool IsValidAt(DateTimeOffset now) => now < ExpiresAt;
    public TimeSpan MaxAge => ExpiresAt - FetchedAt;
}

/// <summary>
/// The policy cache: an in-memory map (every read) over an optional SQLite table (every write), so that policies
/// survive restarts (RFC 8461 §10.2: a sender that forgets policies re-opens the downgrade window). One row per
/// domain: the policy as served (re-parsed on load, so parser fixes apply to stored policies) and its times.
/// Thread-safe. Reads never touch the disk.
/// </summary>
public sealed class PolicyStore : IDisposable
{
    // last_checked is persisted at most this often per domain: cache hits happen per delivery, the disk needs the
    // value only to decide which unused entries to stop refreshing and purge.
    private static readonly TimeSpan TouchPersistInterval = TimeSpan.FromHours(1);

    private readonly ConcurrentDictionary<string, CachedPolicy> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _persistedLastChecked = new(StringComparer.Ordinal);
    private readonly SqliteConnection? _db;
    private readonly object _dbGate = new();

    public string? Path { get; }

    /// <summary>Entries dropped at load because the stored text no longer parses (with the reason).</summary>
    public IReadOnlyList<string> LoadErrors { get; }

    private PolicyStore(string? path)
    {
        Path = path;
        var errors = new List<string>();
        if (path is not null)
        {
            var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
            _db = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = path,
                Mode = SqliteOpenMode.ReadWriteCreate,
                Cache = SqliteCacheMode.Private,
                Pooling = false,
            }.ToString());
            _db.Open();
            Exec("PRAGMA journal_mode=WAL;");
            Exec("PRAGMA synchronous=NORMAL;");
            Exec("PRAGMA busy_timeout=5000;");
            Exec("""
                CREATE TABLE IF NOT EXISTS mta_sts_policy (
                    domain       TEXT PRIMARY KEY NOT NULL,
                    policy_id    TEXT NOT NULL,
                    policy_text  TEXT NOT NULL,
                    fetched_at   INTEGER NOT NULL,  -- unix ms, UTC
                    expires_at   INTEGER NOT NULL,
                    last_checked INTEGER NOT NULL
                ) WITHOUT ROWID;
                """);
            Load(errors);
        }
        LoadErrors = errors;
    }

    /// <summary>Opens (creating if needed) the SQLite cache at <paramref name="path"/> and loads it into memory.</summary>
    public static PolicyStore Open(string path) => new(path);

    /// <summary>A cache without persistence (tests, tools).</summary>
    public static PolicyStore InMemory() => new(null);

    public int Count => _entries.Count;

    public CachedPolicy? Get(string domain) => _entries.TryGetValue(Key(domain), out var e) ? e : null;

    public IReadOnlyCollection<CachedPolicy> Snapshot() => _entries.Values.ToArray();

    /// <summary>Inserts or replaces the domain's entry (memory and disk).</summary>
    public void Put(CachedPolicy entry)
    {
        entry = entry with { Domain = Key(entry.Domain) };
        _entries[entry.Domain] = entry;
        _persistedLastChecked[entry.Domain] = entry.LastChecked;
        if (_db is null) return;
        lock (_dbGate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = """
                INSERT INTO mta_sts_policy (domain, policy_id, policy_text, fetched_at, expires_at, last_checked)
                VALUES ($d, $id, $text, $f, $e, $c)
                ON CONFLICT(domain) DO UPDATE SET policy_id = excluded.policy_id, policy_text = excluded.policy_text,
                    fetched_at = excluded.fetched_at, expires_at = excluded.expires_at, last_checked = excluded.last_checked;
                """;
            cmd.Parameters.AddWithValue("$d", entry.Domain);
            cmd.Parameters.AddWithValue("$id", entry.PolicyId);
            cmd.Parameters.AddWithValue("$text", entry.PolicyText);
            cmd.Parameters.AddWithValue("$f", entry.FetchedAt.ToUnixTimeMilliseconds());
            cmd.Parameters.AddWithValue("$e", entry.ExpiresAt.ToUnixTimeMilliseconds());
            cmd.Parameters.AddWithValue("$c", entry.LastChecked.ToUnixTimeMilliseconds());
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Records a use of the entry. Always in memory; on disk at most hourly per domain.</summary>
    public void Touch(string domain, DateTimeOffset when)
    {
        var key = Key(domain);
        if (!_entries.TryGetValue(key, out var e) || when <= e.LastChecked) return;
        _entries.TryUpdate(key, e with { LastChecked = when }, e);
        if (_db is null) return;
        if (_persistedLastChecked.TryGetValue(key, out var persisted) && when - persisted < TouchPersistInterval) return;
        _persistedLastChecked[key] = when;
        lock (_dbGate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "UPDATE mta_sts_policy SET last_checked = $c WHERE domain = $d AND last_checked < $c;";
            cmd.Parameters.AddWithValue("$d", key);
            cmd.Parameters.AddWithValue("$c", when.ToUnixTimeMilliseconds());
            cmd.ExecuteNonQuery();
        }
    }

    public bool Remove(string domain)
    {
        var key = Key(domain);
        var removed = _entries.TryRemove(key, out _);
        _persistedLastChecked.TryRemove(key, out _);
        if (_db is not null)
            lock (_dbGate)
            {
                using var cmd = _db.CreateCommand();
                cmd.CommandText = "DELETE FROM mta_sts_policy WHERE domain = $d;";
                cmd.Parameters.AddWithValue("$d", key);
                removed |= cmd.ExecuteNonQuery() > 0;
            }
        return removed;
    }

    /// <summary>Drops entries that expired before <paramref name="expiredBefore"/> and were not used since then
    /// (domains we no longer send to). Returns how many.</summary>
    public int Purge(DateTimeOffset expiredBefore)
    {
        var victims = _entries.Values.Where(e => e.ExpiresAt < expiredBefore && e.LastChecked < expiredBefore).ToList();
        foreach (var v in victims) Remove(v.Domain);
        return victims.Count;
    }

    private void Load(List<string> errors)
    {
        var bad = new List<string>();
        lock (_dbGate)
        {
            using var cmd = _db!.CreateCommand();
            cmd.CommandText = "SELECT domain, policy_id, policy_text, fetched_at, expires_at, last_checked FROM mta_sts_policy;";
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                var domain = reader.GetString(0);
                var text = reader.GetString(2);
                var parsed = StsPolicyParser.Parse(text);
                if (!parsed.Ok)
                {
                    errors.Add($"{domain}: stored policy no longer parses: {parsed.Error}");
                    bad.Add(domain);
                    continue;
                }
                var entry = new CachedPolicy(domain, reader.GetString(1), text, parsed.Value!,
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3)),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)));
                _entries[domain] = entry;
                _persistedLastChecked[domain] = entry.LastChecked;
            }
        }
        foreach (var d in bad) Remove(d);
    }

    private void Exec(string sql)
    {
        using var cmd = _db!.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static string Key(string domain) => DestinationDomain.KeyOf(domain);

    public void Dispose()
    {
        lock (_dbGate) _db?.Dispose();
    }
}
