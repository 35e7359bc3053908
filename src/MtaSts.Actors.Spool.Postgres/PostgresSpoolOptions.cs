using System.Text.RegularExpressions;

namespace MtaSts.Actors.Spool.Postgres;

/// <param name="ConnectionString">Npgsql connection string (the same database as the Akka journal is fine: the spool
/// uses its own tables, named by <see cref="TablePrefix"/>).</param>
public sealed partial record PostgresSpoolOptions(string ConnectionString)
{
    /// <summary>Prefix of the spool's tables and sequence (<c>{prefix}_messages</c>, <c>{prefix}_recipients</c>,
    /// <c>{prefix}_mid_seq</c>). Lower-case letters, digits and '_' only (it is spliced into SQL).</summary>
    public string TablePrefix { get; init; } = "mtasts_spool";

    /// <summary>Local directory for <see cref="MessageBodyWriter"/> spill files (bodies too large to keep in memory
    /// while they arrive); null keeps every body in memory. Leftovers of dead processes are deleted at open.</summary>
    public string? SpillDirectory { get; init; }

    /// <summary>Most appends (or done-marks) covered by one transaction.</summary>
    public int MaxBatch { get; init; } = 256;

    /// <summary>Most body bytes covered by one append transaction (a single larger body still gets its own).</summary>
    public long MaxBatchBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Appends waiting for the writer before <see cref="ISpool.AppendAsync"/> itself waits (back-pressure).</summary>
    public int QueueCapacity { get; init; } = 4096;

    /// <summary>
    /// Maps a recipient's domain (<see cref="Recipient.Domain"/>: the lower-cased part after the last '@') to the key
    /// it is stored under — the gateway passes its normalised destination-domain name. A recipient whose key is
    /// <c>null</c> is stored and counted (the message stays in the spool until it is marked done, and
    /// <see cref="ISpool.Recover"/> sees it) but is never returned
    /// by <see cref="IClusterSpool.OutstandingAsync"/> nor counted by <see cref="IClusterSpool.DomainsAsync"/>:
    /// no domain owner will load it. Default: the domain as is.
    /// </summary>
    public Func<string, string?> DomainKey { get; init; } = static d => d;

    /// <summary>Upper bound of every database call (one transaction of the writer loops included).</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>MIDs leased per block by <see cref="PostgresSpool.Mids"/>. The first node to create the sequence fixes
    /// the block size (its INCREMENT); later nodes use the sequence's value whatever they ask.</summary>
    public int MidBlockSize { get; init; } = 1000;

    /// <summary>Bytes of bodies this node appended that it keeps in memory, so that delivering them here needs no
    /// database read (a body is immutable once committed; the database holds the only durable copy). 0 turns it off.</summary>
    public long BodyCacheBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>How long <see cref="ISpool.Count"/> may serve a cached value before refreshing it in the background.</summary>
    public TimeSpan CountRefreshInterval { get; init; } = TimeSpan.FromSeconds(2);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ConnectionString)) throw new ArgumentException("a connection string is required");
        if (!PrefixPattern().IsMatch(TablePrefix ?? ""))
            throw new ArgumentException($"table prefix '{TablePrefix}' must match {PrefixPattern()}", nameof(TablePrefix));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(QueueCapacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MidBlockSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(BodyCacheBytes);
        ArgumentNullException.ThrowIfNull(DomainKey);
        if (CommandTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(CommandTimeout));
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,40}$")]
    private static partial Regex PrefixPattern();
}

/// <summary>A spool transaction failed (database unreachable, commit refused, timeout). For an append: the message is
/// NOT accepted — answer 4xx. (When the connection broke during COMMIT itself the outcome is unknown: the message may
/// be stored and delivered although the client was told to retry, a duplicate rather than a loss.)</summary>
public sealed class PostgresSpoolException(string message, Exception? inner = null) : IOException(message, inner);
