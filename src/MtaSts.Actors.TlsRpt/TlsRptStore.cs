using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace MtaSts.Actors.TlsRpt;

/// <summary>
/// Durable TLS-RPT counters in SQLite (<c>&lt;data-dir&gt;/tlsrpt.db</c>). One row per node + policy domain + UTC day +
/// policy + result (failure type and addresses); the count is added to (UPSERT), never overwritten, so rows written by
/// several nodes into one database (a later cluster store) add up with a GROUP BY. Also remembers which (domain, day)
/// reports went out (no double report after a restart) and how many report messages we mailed to a domain per day.
/// Thread-safe (one connection behind a lock; writes are batched by <see cref="TlsRptRecorder"/>).
/// </summary>
public sealed class TlsRptStore : IDisposable
{
    private readonly SqliteConnection _db;
    private readonly object _gate = new();

    private TlsRptStore(SqliteConnection db) => _db = db;

    public static TlsRptStore Open(string path)
    {
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            CREATE TABLE IF NOT EXISTS tlsrpt_sessions(
              node TEXT NOT NULL, domain TEXT NOT NULL, day TEXT NOT NULL, policy_key TEXT NOT NULL, result_key TEXT NOT NULL,
              policy_type TEXT NOT NULL, policy_strings TEXT NOT NULL, mx_hosts TEXT NOT NULL,
              result_type TEXT, sending_ip TEXT, receiving_mx TEXT, receiving_ip TEXT,
              sessions INTEGER NOT NULL,
              PRIMARY KEY(node, domain, day, policy_key, result_key));
            CREATE INDEX IF NOT EXISTS tlsrpt_sessions_day ON tlsrpt_sessions(day, domain);
            CREATE TABLE IF NOT EXISTS tlsrpt_reports(
              domain TEXT NOT NULL, day TEXT NOT NULL, report_id TEXT NOT NULL, outcome TEXT NOT NULL, at TEXT NOT NULL,
              PRIMARY KEY(domain, day));
            CREATE TABLE IF NOT EXISTS tlsrpt_report_mail(
              domain TEXT NOT NULL, day TEXT NOT NULL, messages INTEGER NOT NULL, PRIMARY KEY(domain, day));
            """;
        cmd.ExecuteNonQuery();
        return new TlsRptStore(db);
    }

    public static string Day(DateOnly d) => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    /// <summary>Adds a batch of counts in one transaction (one fsync).</summary>
    public void Add(string node, IEnumerable<KeyValuePair<TlsRptSession, long>> batch)
    {
        lock (_gate)
        {
            using var tx = _db.BeginTransaction();
            using var cmd = _db.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = """
                INSERT INTO tlsrpt_sessions(node, domain, day, policy_key, result_key, policy_type, policy_strings, mx_hosts,
                  result_type, sending_ip, receiving_mx, receiving_ip, sessions)
                VALUES($node, $domain, $day, $pk, $rk, $pt, $ps, $mx, $rt, $sip, $rmx, $rip, $n)
                ON CONFLICT(node, domain, day, policy_key, result_key) DO UPDATE SET sessions = sessions + excluded.sessions
                """;
            var p = new[] { "$node", "$domain", "$day", "$pk", "$rk", "$pt", "$ps", "$mx", "$rt", "$sip", "$rmx", "$rip", "$n" }
                .ToDictionary(n => n, n => cmd.Parameters.Add(new SqliteParameter { ParameterName = n }));
            foreach (var (s, n) in batch)
            {
                p["$node"].Value = node;
                p["$domain"].Value = s.PolicyDomain;
                p["$day"].Value = Day(DateOnly.FromDateTime(s.At.UtcDateTime));
                p["$pk"].Value = s.Policy.Key;
                p["$rk"].Value = s.ResultKey;
                p["$pt"].Value = s.Policy.Type;
                p["$ps"].Value = JsonSerializer.Serialize(s.Policy.Strings);
                p["$mx"].Value = JsonSerializer.Serialize(s.Policy.MxHosts);
                p["$rt"].Value = (object?)s.ResultType ?? DBNull.Value;
                p["$sip"].Value = s.ResultType is null ? DBNull.Value : (object?)s.SendingIp ?? DBNull.Value;
                p["$rmx"].Value = s.ResultType is null ? DBNull.Value : (object?)s.ReceivingMx ?? DBNull.Value;
                p["$rip"].Value = s.ResultType is null ? DBNull.Value : (object?)s.ReceivingIp ?? DBNull.Value;
                p["$n"].Value = n;
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
    }

    /// <summary>Policy domains with sessions on <paramref name="day"/> (any node).</summary>
    public IReadOnlyList<string> Domains(DateOnly day) => Query("SELECT DISTINCT domain FROM tlsrpt_sessions WHERE day = $day ORDER BY domain",
        c => c.Parameters.AddWithValue("$day", Day(day)), r => r.GetString(0));

    /// <summary>The day's counts of one domain, summed over nodes.</summary>
    public IReadOnlyList<TlsRptCount> Counts(string domain, DateOnly day) => Query("""
            SELECT policy_type, policy_strings, mx_hosts, result_type, sending_ip, receiving_mx, receiving_ip, SUM(sessions)
            FROM tlsrpt_sessions WHERE domain = $domain AND day = $day
            GROUP BY policy_key, result_key ORDER BY policy_key, result_key
            """,
        c =>
        {
            c.Parameters.AddWithValue("$domain", domain);
            c.Parameters.AddWithValue("$day", Day(day));
        },
        r => new TlsRptCount(
            new TlsRptPolicy(r.GetString(0), JsonSerializer.Deserialize<string[]>(r.GetString(1))!, JsonSerializer.Deserialize<string[]>(r.GetString(2))!),
            r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5),
            r.IsDBNull(6) ? null : r.GetString(6), r.GetInt64(7)));

    public bool WasReported(string domain, DateOnly day) =>
        Query("SELECT 1 FROM tlsrpt_reports WHERE domain = $d AND day = $day", c =>
        {
            c.Parameters.AddWithValue("$d", domain);
            c.Parameters.AddWithValue("$day", Day(day));
        }, r => 1).Count > 0;

    public void MarkReported(string domain, DateOnly day, string reportId, string outcome, DateTimeOffset at) => Exec("""
        INSERT INTO tlsrpt_reports(domain, day, report_id, outcome, at) VALUES($d, $day, $id, $o, $at)
        ON CONFLICT(domain, day) DO UPDATE SET report_id = excluded.report_id, outcome = excluded.outcome, at = excluded.at
        """, c =>
    {
        c.Parameters.AddWithValue("$d", domain);
        c.Parameters.AddWithValue("$day", Day(day));
        c.Parameters.AddWithValue("$id", reportId);
        c.Parameters.AddWithValue("$o", outcome);
        c.Parameters.AddWithValue("$at", at.ToString("O", CultureInfo.InvariantCulture));
    });

    /// <summary>Counts a report message we mailed to <paramref name="domain"/> (its session is in that domain's counts).</summary>
    public void AddReportMail(string domain, DateOnly day) => Exec("""
        INSERT INTO tlsrpt_report_mail(domain, day, messages) VALUES($d, $day, 1)
        ON CONFLICT(domain, day) DO UPDATE SET messages = messages + 1
        """, c =>
    {
        c.Parameters.AddWithValue("$d", domain);
        c.Parameters.AddWithValue("$day", Day(day));
    });

    public long ReportMails(string domain, DateOnly day) =>
        Query("SELECT messages FROM tlsrpt_report_mail WHERE domain = $d AND day = $day", c =>
        {
            c.Parameters.AddWithValue("$d", domain);
            c.Parameters.AddWithValue("$day", Day(day));
        }, r => r.GetInt64(0)).FirstOrDefault();

    /// <summary>Deletes counters and bookkeeping older than <paramref name="oldestKept"/>.</summary>
    public void Prune(DateOnly oldestKept)
    {
        foreach (var t in new[] { "tlsrpt_sessions", "tlsrpt_reports", "tlsrpt_report_mail" })
            Exec($"DELETE FROM {t} WHERE day < $day", c => c.Parameters.AddWithValue("$day", Day(oldestKept)));
    }

    private void Exec(string sql, Action<SqliteCommand> bind)
    {
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = sql;
            bind(cmd);
            cmd.ExecuteNonQuery();
        }
    }

    private List<T> Query<T>(string sql, Action<SqliteCommand> bind, Func<SqliteDataReader, T> map)
    {
        lock (_gate)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = sql;
            bind(cmd);
            using var r = cmd.ExecuteReader();
            var list = new List<T>();
            while (r.Read()) list.Add(map(r));
            return list;
        }
    }

    public void Dispose()
    {
        lock (_gate) _db.Dispose();
    }
}
