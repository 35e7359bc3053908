using System.Data;
using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using MtaSts.Actors.Logging;
using Npgsql;
using NpgsqlTypes;

namespace MtaSts.Actors.Spool.Postgres;

/// <summary>
/// The cluster spool: accepted mail in PostgreSQL so that the owner of a destination domain, on any node, can deliver
/// any message wherever it was accepted, and a lost node strands nothing.
/// </summary>
/// <remarks>
/// <para>Tables (created idempotently at open): <c>{prefix}_messages</c> (mid PK, envelope = <see cref="EnvelopeCodec"/>,
/// body stored once however many domains it spans, body_length, received_at, outstanding = recipients not yet done)
/// and <c>{prefix}_recipients</c> ((mid, rid) PK, domain key, done) with a partial index on (domain, mid) WHERE NOT
/// done, which is what <see cref="OutstandingAsync"/> reads.</para>
/// <para>Group commit: one writer loop per kind drains its queue; every append waiting at that moment goes into one
/// transaction (two binary COPYs; bodies streamed, spilled ones from their file) and each task completes only after
/// COMMIT. A failed transaction fails every task of its batch. Done-marks likewise, in one round trip per batch.</para>
/// <para>"Finished exactly once" across nodes: a done-mark flips only recipients not yet done and subtracts exactly
/// that count from <c>outstanding</c> under the message's row lock; whoever takes it to 0 deletes the message (body
/// included) in the same transaction. A batch first locks its messages in MID order, so two nodes' batches cannot
/// deadlock on one another (and a deadlock or serialization failure is retried anyway). Three statements per batch,
/// whatever its size, in one round trip (an implicit transaction).</para>
/// </remarks>
public sealed class PostgresSpool : IClusterSpool
{
    private const string UniqueViolation = "23505";

    private readonly PostgresSpoolOptions _options;
    private readonly MailLog _log;
    private readonly NpgsqlDataSource _db;
    private readonly string _messages, _recipients, _sequence;
    private readonly Channel<AppendOp> _appendQueue;
    private readonly Channel<DoneOp> _doneQueue;
    private readonly CancellationTokenSource _stopping = new();
    private readonly BodyCache _bodies;
    private Task _appendLoop = Task.CompletedTask, _doneLoop = Task.CompletedTask;
    private int _midBlockSize;
    private long _highestMid;
    private int _count;
    private long _countRefreshedAt;
    private int _countRefreshing;
    private int _disposed;

    private long _appends, _appendCommits, _doneOps, _doneCommits, _finished, _failedBatches;

    private PostgresSpool(PostgresSpoolOptions options, MailLog log)
    {
        _options = options;
        _log = log;
        var builder = new NpgsqlDataSourceBuilder(options.ConnectionString);
        // The 250 goes out after COMMIT returns: that must mean durable whatever the server's default says.
        var pgOptions = builder.ConnectionStringBuilder.Options;
        if (pgOptions is null || !pgOptions.Contains("synchronous_commit", StringComparison.OrdinalIgnoreCase))
            builder.ConnectionStringBuilder.Options = ((pgOptions ?? "") + " -c synchronous_commit=on").Trim();
        // The spool sends the same few statements all day: prepared on each pooled connection after first use, the
        // server parses and plans them once instead of per batch (unless the operator chose otherwise).
        if (builder.ConnectionStringBuilder.MaxAutoPrepare == 0) builder.ConnectionStringBuilder.MaxAutoPrepare = 16;
        _db = builder.Build();
        _messages = options.TablePrefix + "_messages";
        _recipients = options.TablePrefix + "_recipients";
        _sequence = options.TablePrefix + "_mid_seq";
        _appendQueue = Channel.CreateBounded<AppendOp>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true, FullMode = BoundedChannelFullMode.Wait,
        });
        _doneQueue = Channel.CreateUnbounded<DoneOp>(new UnboundedChannelOptions { SingleReader = true });
        Mids = new IdSequence(LeaseMidBlock, 1); // replaced in OpenAsync once the sequence's block size is known
        _bodies = new BodyCache(options.BodyCacheBytes);
    }

    /// <summary>Creates the schema if missing (safe when several nodes open at once) and starts the writer loops.</summary>
    public static async Task<PostgresSpool> OpenAsync(PostgresSpoolOptions options, MailLog? log = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var spool = new PostgresSpool(options, log ?? MailLog.Null);
        try
        {
            await spool.InitialiseAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await spool._db.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        spool._appendLoop = Task.Run(spool.AppendLoopAsync);
        spool._doneLoop = Task.Run(spool.DoneLoopAsync);
        return spool;
    }

    /// <summary>Cluster-unique MIDs: blocks leased from the <c>{prefix}_mid_seq</c> sequence. Use this instead of
    /// <c>new IdSequence(spool.HighestMid)</c> in cluster mode. Increasing within this process, unique cluster-wide.</summary>
    public IdSequence Mids { get; private set; }

    /// <summary>The MID block size in force (the sequence's INCREMENT).</summary>
    public int MidBlockSize => _midBlockSize;

    /// <summary>Appends committed.</summary>
    public long Appends => Interlocked.Read(ref _appends);
    /// <summary>Append transactions committed (group commits): fewer than <see cref="Appends"/> under concurrency.</summary>
    public long AppendCommits => Interlocked.Read(ref _appendCommits);
    /// <summary>MarkDone calls committed.</summary>
    public long DoneMarks => Interlocked.Read(ref _doneOps);
    /// <summary>MarkDone transactions committed.</summary>
    public long DoneCommits => Interlocked.Read(ref _doneCommits);
    /// <summary>MarkDone calls that returned true (this instance finished the message).</summary>
    public long FinishedMessages => Interlocked.Read(ref _finished);
    /// <summary>Transactions that failed (their tasks failed).</summary>
    public long FailedBatches => Interlocked.Read(ref _failedBatches);
    /// <summary>Body reads served from the bodies this node appended (no database read).</summary>
    public long BodyCacheHits => _bodies.Hits;
    /// <summary>Body reads that went to the database.</summary>
    public long BodyCacheMisses => _bodies.Misses;
    /// <summary>Bytes of bodies held by the cache now.</summary>
    public long BodyCacheBytes => _bodies.Bytes;

    public string? SpillDirectory => _options.SpillDirectory;

    /// <summary>Highest MID leased by any node (sequence) or stored, as of open, raised by this instance's leases.</summary>
    public long HighestMid => Interlocked.Read(ref _highestMid);

    /// <summary>Messages held cluster-wide: refreshed from the database in the background at most every
    /// <see cref="PostgresSpoolOptions.CountRefreshInterval"/>, adjusted locally in between.</summary>
    public int Count
    {
        get
        {
            long age = Stopwatch.GetTimestamp() - Interlocked.Read(ref _countRefreshedAt);
            if (Stopwatch.GetElapsedTime(0, age) > _options.CountRefreshInterval && Volatile.Read(ref _disposed) == 0
                && Interlocked.Exchange(ref _countRefreshing, 1) == 0)
                _ = Task.Run(RefreshCountAsync);
            return Math.Max(0, Volatile.Read(ref _count));
        }
    }

    // ---------------------------------------------------------------- opening

    private async Task InitialiseAsync(CancellationToken ct)
    {
        using var cts = Timeout(ct);
        await using var conn = await _db.OpenConnectionAsync(cts.Token).ConfigureAwait(false);
        await using (var tx = await conn.BeginTransactionAsync(cts.Token).ConfigureAwait(false))
        {
            // Concurrent CREATE ... IF NOT EXISTS can still collide in the catalogue: one node at a time.
            await ExecAsync(conn, tx, "SELECT pg_advisory_xact_lock(hashtext(@p))", cts.Token, ("p", _options.TablePrefix + " schema")).ConfigureAwait(false);
            await ExecAsync(conn, tx, $"""
                CREATE TABLE IF NOT EXISTS {_messages} (
                    mid bigint PRIMARY KEY,
                    envelope bytea NOT NULL,
                    body bytea NOT NULL,
                    body_length bigint NOT NULL,
                    received_at timestamptz NOT NULL,
                    outstanding int NOT NULL)
                    WITH (toast_tuple_target = 8160);
                CREATE TABLE IF NOT EXISTS {_recipients} (
                    mid bigint NOT NULL,
                    rid int NOT NULL,
                    domain text,
                    done boolean NOT NULL DEFAULT false,
                    PRIMARY KEY (mid, rid));
                CREATE INDEX IF NOT EXISTS {_recipients}_outstanding ON {_recipients} (domain, mid) WHERE NOT done;
                -- Bodies up to ≈ 8 KB stay in the row, uncompressed (no TOAST table insert, no pglz attempt per message).
                ALTER TABLE {_messages} SET (toast_tuple_target = 8160);
                CREATE SEQUENCE IF NOT EXISTS {_sequence} START WITH 1 MINVALUE 1 INCREMENT BY {_options.MidBlockSize.ToString(CultureInfo.InvariantCulture)};
                """, cts.Token).ConfigureAwait(false);
            await tx.CommitAsync(cts.Token).ConfigureAwait(false);
        }
        _midBlockSize = Convert.ToInt32(await ScalarAsync(conn,
            "SELECT increment_by FROM pg_sequences WHERE schemaname = current_schema() AND sequencename = @s", cts.Token, ("s", _sequence))
            .ConfigureAwait(false), CultureInfo.InvariantCulture);
        if (_midBlockSize != _options.MidBlockSize)
            _log.Info("spool_mid_block", $"Spool MID sequence {_sequence} leases blocks of {_midBlockSize} (configured {_options.MidBlockSize}; the sequence decides)");
        Mids = new IdSequence(LeaseMidBlock, _midBlockSize);

        long leased = 0;
        await using (var cmd = new NpgsqlCommand($"SELECT last_value, is_called FROM {_sequence}", conn))
        await using (var r = await cmd.ExecuteReaderAsync(cts.Token).ConfigureAwait(false))
            if (await r.ReadAsync(cts.Token).ConfigureAwait(false) && r.GetBoolean(1))
                leased = r.GetInt64(0) + _midBlockSize - 1;
        var stored = await ScalarAsync(conn, $"SELECT max(mid) FROM {_messages}", cts.Token).ConfigureAwait(false);
        _highestMid = Math.Max(leased, stored is long s ? s : 0);
        _count = Convert.ToInt32(await ScalarAsync(conn, $"SELECT count(*) FROM {_messages}", cts.Token).ConfigureAwait(false), CultureInfo.InvariantCulture);
        _countRefreshedAt = Stopwatch.GetTimestamp();

        if (_options.SpillDirectory is { } spill) CleanSpillDirectory(spill);
        _log.Info("spool_open", $"PostgreSQL spool opened ({_options.TablePrefix}): {_count} messages outstanding, highest MID {_highestMid}",
            ("messages", _count), ("highest_mid", _highestMid));
    }

    /// <summary>Spill files of bodies still arriving when their process stopped were never acknowledged. The directory
    /// may be shared by several processes: only files of processes that no longer run are removed.</summary>
    private void CleanSpillDirectory(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.EnumerateFiles(dir, "body-*.tmp"))
        {
            var parts = Path.GetFileName(file).Split('-');
            if (parts.Length >= 3 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && ProcessRuns(pid)) continue;
            try { File.Delete(file); }
            catch (IOException ex) { _log.Warning("spool_spill_cleanup_failed", $"Cannot delete spill file {file}: {ex.Message}"); }
        }
    }

    private static bool ProcessRuns(int pid)
    {
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    private long LeaseMidBlock()
    {
        long start = LeaseBlock();
        long end = start + _midBlockSize - 1;
        long seen;
        while ((seen = Interlocked.Read(ref _highestMid)) < end && Interlocked.CompareExchange(ref _highestMid, end, seen) != seen) { }
        return start;
    }

    private long LeaseBlock()
    {
        try
        {
            using var conn = _db.OpenConnection();
            using var cmd = new NpgsqlCommand($"SELECT nextval('{_sequence}')", conn) { CommandTimeout = TimeoutSeconds };
            return (long)cmd.ExecuteScalar()!;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            throw new PostgresSpoolException($"cannot lease an id block from {_sequence}: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Connection ids for the operator log (ICID, DCID) in cluster mode: blocks leased from the MID sequence, so that no
    /// two nodes log the same ICID or DCID (seeded from the clock, nodes started in the same second did). One number
    /// space with the MIDs, told apart by their prefix in the log. The first block is leased here (the database is up
    /// at start); a later lease never throws — a connection must not fail for its id: when the database cannot lease,
    /// the sequence goes on past its block (ids may then repeat another node's) and says so.
    /// </summary>
    public IdSequence ConnectionIds(string what)
    {
        long last = LeaseBlock() - _midBlockSize;
        return new IdSequence(() =>
        {
            try { return last = LeaseBlock(); }
            catch (PostgresSpoolException ex)
            {
                _log.Warning("spool_id_lease_failed", $"{what} block not leased, continuing locally (ids may repeat another node's): {ex.Message}",
                    ("ids", what));
                return last += _midBlockSize;
            }
        }, _midBlockSize);
    }

    // ---------------------------------------------------------------- appends

    /// <remarks>Cancellation is honoured until the writer loop picks the append up; from then on the call reports the
    /// transaction's outcome (a committed message must not be reported as failed).</remarks>
    public async Task<SpooledMessage> AppendAsync(long mid, Envelope envelope, MessageBody body, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ArgumentNullException.ThrowIfNull(body);
        if (mid <= 0) throw new ArgumentOutOfRangeException(nameof(mid), "MIDs start at 1");
        if (envelope.Recipients.Count == 0) throw new ArgumentException("a message needs at least one recipient", nameof(envelope));
        if (envelope.Recipients.Select(r => r.Rid).Distinct().Count() != envelope.Recipients.Count)
            throw new ArgumentException("recipient RIDs must be distinct", nameof(envelope));
        if (body.Length >= 1L << 30) throw new ArgumentException($"message too large for the spool ({body.Length} bytes)", nameof(body));
        ct.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        // Encode on the caller's thread so that the writer only streams bytes. A small body is copied into an array of
        // its own: it goes as a parameter of the one-round-trip insert and stays in the body cache after the commit.
        var keys = envelope.Recipients.Select(r => _options.DomainKey(r.Domain)).ToArray();
        var copy = !body.IsSpilled && body.Length <= InlineBodyMax ? body.Memory.ToArray() : null;
        var op = new AppendOp(mid, envelope, EnvelopeCodec.Serialize(envelope), keys, body, copy, ct);
        try
        {
            await _appendQueue.Writer.WriteAsync(op, ct).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException(nameof(PostgresSpool));
        }
        return await op.Completion.Task.ConfigureAwait(false);
    }

    private async Task AppendLoopAsync()
    {
        var reader = _appendQueue.Reader;
        var batch = new List<AppendOp>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            long bytes = 0;
            var mids = new HashSet<long>();
            while (batch.Count < _options.MaxBatch && bytes < _options.MaxBatchBytes && reader.TryRead(out var op))
            {
                if (op.Cancellation.IsCancellationRequested) { op.Completion.TrySetCanceled(op.Cancellation); continue; }
                if (!mids.Add(op.Mid)) { op.Completion.TrySetException(new InvalidOperationException($"MID {op.Mid} is already in the spool")); continue; }
                batch.Add(op);
                bytes += op.Body.Length;
            }
            if (batch.Count == 0) continue;
            try
            {
                await CommitAppendsAsync(batch).ConfigureAwait(false);
                Complete(batch);
            }
            catch (PostgresException ex) when (ex.SqlState == UniqueViolation && batch.Count > 1)
            {
                // A MID already stored spoils the whole COPY: retry one by one so that only the duplicate fails.
                foreach (var op in batch)
                {
                    try
                    {
                        await CommitAppendsAsync([op]).ConfigureAwait(false);
                        Complete([op]);
                    }
                    catch (Exception one) { Fail([op], one); }
                }
            }
            catch (Exception ex) { Fail(batch, ex); }
        }
    }

    private void Complete(List<AppendOp> ops)
    {
        foreach (var op in ops)
            if (op.BodyCopy is { } bytes) _bodies.Add(op.Mid, bytes);
        Interlocked.Increment(ref _appendCommits);
        Interlocked.Add(ref _appends, ops.Count);
        Interlocked.Add(ref _count, ops.Count);
        long max = ops.Max(o => o.Mid), seen;
        while ((seen = Interlocked.Read(ref _highestMid)) < max && Interlocked.CompareExchange(ref _highestMid, max, seen) != seen) { }
        foreach (var op in ops) op.Completion.TrySetResult(new SpooledMessage(op.Mid, op.Envelope, op.Body.Length));
    }

    private void Fail(List<AppendOp> ops, Exception ex)
    {
        Interlocked.Increment(ref _failedBatches);
        Exception error = ex is PostgresException { SqlState: UniqueViolation } && ops.Count == 1
            ? new InvalidOperationException($"MID {ops[0].Mid} is already in the spool", ex)
            : Wrap("append", ex);
        _log.Warning("spool_append_failed", $"PostgreSQL spool append of {ops.Count} message(s) failed: {ex.Message}",
            ("messages", ops.Count), ("error", ex.GetType().Name));
        foreach (var op in ops) op.Completion.TrySetException(error);
    }

    /// <summary>Bodies up to this size are copied at append (one array, reused by the cache) and make a batch eligible
    /// for the one-round-trip insert.</summary>
    private const int InlineBodyMax = 64 * 1024;

    private Task CommitAppendsAsync(IReadOnlyList<AppendOp> ops) =>
        ops.All(o => o.BodyCopy is not null) ? CommitInlineAsync(ops) : CommitByCopyAsync(ops);

    /// <summary>Small bodies: both tables filled by two INSERT … SELECT FROM unnest(arrays) in ONE round trip, run as one
    /// implicit transaction (one Sync) and committed before the server answers — instead of BEGIN, two COPYs and COMMIT.</summary>
    private async Task CommitInlineAsync(IReadOnlyList<AppendOp> ops)
    {
        using var cts = Timeout(default);
        var ct = cts.Token;
        int recipients = ops.Sum(o => o.Envelope.Recipients.Count);
        var rMid = new long[recipients];
        var rRid = new int[recipients];
        var rDomain = new string?[recipients];
        int k = 0;
        foreach (var op in ops)
            for (int i = 0; i < op.Envelope.Recipients.Count; i++, k++)
            {
                rMid[k] = op.Mid;
                rRid[k] = op.Envelope.Recipients[i].Rid;
                rDomain[k] = op.DomainKeys[i];
            }
        await using var conn = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(conn) { Timeout = TimeoutSeconds };
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
            INSERT INTO {_messages} (mid, envelope, body, body_length, received_at, outstanding)
            SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[], $5::timestamptz[], $6::int[])
            """)
        {
            Parameters =
            {
                new NpgsqlParameter<long[]> { TypedValue = ops.Select(o => o.Mid).ToArray() },
                new NpgsqlParameter<byte[][]> { TypedValue = ops.Select(o => o.EnvelopeBytes).ToArray() },
                new NpgsqlParameter<byte[][]> { TypedValue = ops.Select(o => o.BodyCopy!).ToArray() },
                new NpgsqlParameter<long[]> { TypedValue = ops.Select(o => o.Body.Length).ToArray() },
                new NpgsqlParameter<DateTime[]> { TypedValue = ops.Select(o => o.Envelope.ReceivedAt.UtcDateTime).ToArray() },
                new NpgsqlParameter<int[]> { TypedValue = ops.Select(o => o.Envelope.Recipients.Count).ToArray() },
            },
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
            INSERT INTO {_recipients} (mid, rid, domain) SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[])
            """)
        {
            Parameters =
            {
                new NpgsqlParameter<long[]> { TypedValue = rMid },
                new NpgsqlParameter<int[]> { TypedValue = rRid },
                new NpgsqlParameter<string?[]> { TypedValue = rDomain },
            },
        });
        await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Any body spilled to a file (or too large to copy): streamed by binary COPY in an explicit transaction.</summary>
    private async Task CommitByCopyAsync(IReadOnlyList<AppendOp> ops)
    {
        using var cts = Timeout(default);
        var ct = cts.Token;
        await using var conn = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using (var copy = await conn.BeginBinaryImportAsync(
            $"COPY {_messages} (mid, envelope, body, body_length, received_at, outstanding) FROM STDIN (FORMAT BINARY)", ct).ConfigureAwait(false))
        {
            copy.Timeout = _options.CommandTimeout;
            foreach (var op in ops)
            {
                await copy.StartRowAsync(ct).ConfigureAwait(false);
                await copy.WriteAsync(op.Mid, NpgsqlDbType.Bigint, ct).ConfigureAwait(false);
                await copy.WriteAsync(op.EnvelopeBytes, NpgsqlDbType.Bytea, ct).ConfigureAwait(false);
                // Streamed: a spilled body goes from its file to the socket in chunks, never whole in memory.
                await using (var body = op.Body.OpenRead())
                    await copy.WriteAsync(body, NpgsqlDbType.Bytea, ct).ConfigureAwait(false);
                await copy.WriteAsync(op.Body.Length, NpgsqlDbType.Bigint, ct).ConfigureAwait(false);
                await copy.WriteAsync(op.Envelope.ReceivedAt.UtcDateTime, NpgsqlDbType.TimestampTz, ct).ConfigureAwait(false);
                await copy.WriteAsync(op.Envelope.Recipients.Count, NpgsqlDbType.Integer, ct).ConfigureAwait(false);
            }
            await copy.CompleteAsync(ct).ConfigureAwait(false);
        }
        await using (var copy = await conn.BeginBinaryImportAsync(
            $"COPY {_recipients} (mid, rid, domain, done) FROM STDIN (FORMAT BINARY)", ct).ConfigureAwait(false))
        {
            copy.Timeout = _options.CommandTimeout;
            foreach (var op in ops)
                for (int i = 0; i < op.Envelope.Recipients.Count; i++)
                {
                    await copy.StartRowAsync(ct).ConfigureAwait(false);
                    await copy.WriteAsync(op.Mid, NpgsqlDbType.Bigint, ct).ConfigureAwait(false);
                    await copy.WriteAsync(op.Envelope.Recipients[i].Rid, NpgsqlDbType.Integer, ct).ConfigureAwait(false);
                    if (op.DomainKeys[i] is { } key) await copy.WriteAsync(key, NpgsqlDbType.Text, ct).ConfigureAwait(false);
                    else await copy.WriteNullAsync(ct).ConfigureAwait(false);
                    await copy.WriteAsync(false, NpgsqlDbType.Boolean, ct).ConfigureAwait(false);
                }
            await copy.CompleteAsync(ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- done marks

    public async ValueTask<bool> MarkDoneAsync(long mid, IReadOnlyList<int> rids, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(rids);
        ct.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (rids.Count == 0) return false;
        var op = new DoneOp(mid, rids.Distinct().ToArray(), ct);
        if (!_doneQueue.Writer.TryWrite(op)) throw new ObjectDisposedException(nameof(PostgresSpool));
        return await op.Completion.Task.ConfigureAwait(false);
    }

    private async Task DoneLoopAsync()
    {
        var reader = _doneQueue.Reader;
        var batch = new List<DoneOp>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < _options.MaxBatch && reader.TryRead(out var op))
            {
                if (op.Cancellation.IsCancellationRequested) { op.Completion.TrySetCanceled(op.Cancellation); continue; }
                batch.Add(op);
            }
            if (batch.Count == 0) continue;
            var ordered = batch;
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    var finished = await CommitDonesAsync(ordered).ConfigureAwait(false);
                    Interlocked.Increment(ref _doneCommits);
                    Interlocked.Add(ref _doneOps, ordered.Count);
                    for (int i = 0; i < ordered.Count; i++)
                    {
                        if (finished[i])
                        {
                            _bodies.Remove(ordered[i].Mid);
                            Interlocked.Increment(ref _finished);
                            Interlocked.Decrement(ref _count);
                        }
                        ordered[i].Completion.TrySetResult(finished[i]);
                    }
                    break;
                }
                catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure && attempt < 5)
                {
                    _log.Debug("spool_done_retry", $"PostgreSQL spool done-marks retried after {ex.SqlState}");
                }
                catch (Exception ex)
                {
                    Interlocked.Increment(ref _failedBatches);
                    _log.Warning("spool_done_failed", $"PostgreSQL spool done-mark of {ordered.Count} message(s) failed: {ex.Message}",
                        ("messages", ordered.Count), ("error", ex.GetType().Name));
                    var error = Wrap("done-mark", ex);
                    foreach (var op in ordered) op.Completion.TrySetException(error);
                    break;
                }
            }
        }
    }

    private async Task<bool[]> CommitDonesAsync(List<DoneOp> ops)
    {
        // One set of (mid, rid) pairs for the whole batch; when several calls in it name one message, the last of
        // them is the one told that it finished the message.
        var pairs = new HashSet<(long Mid, int Rid)>();
        var lastOp = new Dictionary<long, int>();
        for (int i = 0; i < ops.Count; i++)
        {
            lastOp[ops[i].Mid] = i;
            foreach (var rid in ops[i].Rids) pairs.Add((ops[i].Mid, rid));
        }
        var mids = lastOp.Keys.Order().ToArray();

        using var cts = Timeout(default);
        var ct = cts.Token;
        await using var conn = await _db.OpenConnectionAsync(ct).ConfigureAwait(false);
        // No explicit transaction: the three statements go in one round trip and run as ONE implicit transaction
        // (one Sync), committed before the server answers ReadyForQuery — no separate COMMIT round trip.
        await using var batch = new NpgsqlBatch(conn) { Timeout = TimeoutSeconds };
        // 1. Lock the messages in MID order: two nodes' batches never wait on each other in a cycle, and whoever
        //    holds a message's lock sees every done flag committed before it (READ COMMITTED: fresh snapshot below).
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT mid FROM {_messages} WHERE mid = ANY($1) ORDER BY mid FOR UPDATE")
        {
            Parameters = { new NpgsqlParameter<long[]> { TypedValue = mids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint } },
        });
        // 2. Only recipients not yet done count, subtracted under that lock: a RID marked twice (or by two nodes)
        //    is subtracted once, and exactly one transaction sees outstanding reach 0. A done recipient's row is
        //    deleted (one write, no dead index entry left behind by an update); rows with done = true are only those
        //    an older version wrote, and go with their message.
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
            WITH d AS (DELETE FROM {_recipients} r USING unnest($1::bigint[], $2::int[]) AS i(mid, rid)
                       WHERE r.mid = i.mid AND r.rid = i.rid AND NOT r.done RETURNING r.mid),
                 c AS (SELECT mid, count(*) AS n FROM d GROUP BY mid),
                 u AS (UPDATE {_messages} m SET outstanding = m.outstanding - c.n FROM c WHERE m.mid = c.mid
                       RETURNING m.mid, m.outstanding)
            SELECT mid FROM u WHERE outstanding <= 0
            """)
        {
            Parameters =
            {
                new NpgsqlParameter<long[]> { TypedValue = pairs.Select(p => p.Mid).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint },
                new NpgsqlParameter<int[]> { TypedValue = pairs.Select(p => p.Rid).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer },
            },
        });
        // 3. The finisher deletes the message, body included, in the same transaction.
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
            WITH gone AS (DELETE FROM {_messages} WHERE mid = ANY($1) AND outstanding <= 0 RETURNING mid)
            DELETE FROM {_recipients} WHERE mid IN (SELECT mid FROM gone)
            """)
        {
            Parameters = { new NpgsqlParameter<long[]> { TypedValue = mids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint } },
        });
        var finished = new bool[ops.Count];
        await using (var r = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            if (!await r.NextResultAsync(ct).ConfigureAwait(false)) throw new InvalidOperationException("done-mark batch lost its second result");
            // A message unknown or already finished (and deleted) simply does not come back: idempotent.
            while (await r.ReadAsync(ct).ConfigureAwait(false)) finished[lastOp[r.GetInt64(0)]] = true;
            // Read to the end: a failure of the statements after this one, or of the implicit COMMIT, surfaces here,
            // before any caller is told anything.
            while (await r.NextResultAsync(ct).ConfigureAwait(false)) { }
            await r.CloseAsync().ConfigureAwait(false);
        }
        return finished;
    }

    // ---------------------------------------------------------------- reads

    public async ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(long mid, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_bodies.TryGet(mid, out var cached)) return cached;
        using var cts = Timeout(ct);
        try
        {
            await using var conn = await _db.OpenConnectionAsync(cts.Token).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand($"SELECT body_length, body FROM {_messages} WHERE mid = $1", conn) { CommandTimeout = TimeoutSeconds };
            cmd.Parameters.Add(new NpgsqlParameter<long> { TypedValue = mid });
            // Sequential access: the body is copied from the socket straight into its one array.
            await using var r = await cmd.ExecuteReaderAsync(CommandBehavior.SequentialAccess | CommandBehavior.SingleRow, cts.Token).ConfigureAwait(false);
            if (!await r.ReadAsync(cts.Token).ConfigureAwait(false)) throw new KeyNotFoundException($"MID {mid} is not in the spool");
            var buffer = new byte[r.GetInt64(0)];
            await using (var s = await r.GetStreamAsync(1, cts.Token).ConfigureAwait(false))
                await s.ReadExactlyAsync(buffer, cts.Token).ConfigureAwait(false);
            return buffer;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
        {
            throw Wrap("body read", ex);
        }
    }

    public async Task<IReadOnlyList<RecoveredMessage>> OutstandingAsync(string domain, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(domain);
        return await QueryMessagesAsync($"""
            SELECT m.mid, m.envelope, m.body_length, o.rids
            FROM (SELECT mid, array_agg(rid ORDER BY rid) AS rids FROM {_recipients} WHERE domain = $1 AND NOT done GROUP BY mid) o
            JOIN {_messages} m ON m.mid = o.mid
            ORDER BY m.mid
            """, domain, ct).ConfigureAwait(false);
    }

    /// <summary>Every outstanding message, cluster-wide, with all its outstanding RIDs (whatever their domain key).
    /// Honest but heavy: the gateway does not call it in cluster mode (owners load with <see cref="OutstandingAsync"/>).</summary>
    public IReadOnlyList<RecoveredMessage> Recover() =>
        QueryMessagesAsync($"""
            SELECT m.mid, m.envelope, m.body_length,
                   ARRAY(SELECT rid FROM {_recipients} r WHERE r.mid = m.mid AND NOT r.done ORDER BY rid)
            FROM {_messages} m WHERE m.outstanding > 0
            ORDER BY m.mid
            """, null, default).GetAwaiter().GetResult();

    private async Task<IReadOnlyList<RecoveredMessage>> QueryMessagesAsync(string sql, string? domain, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        using var cts = Timeout(ct);
        try
        {
            await using var conn = await _db.OpenConnectionAsync(cts.Token).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand(sql, conn) { CommandTimeout = TimeoutSeconds };
            if (domain is not null) cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = domain });
            await using var r = await cmd.ExecuteReaderAsync(cts.Token).ConfigureAwait(false);
            var result = new List<RecoveredMessage>();
            while (await r.ReadAsync(cts.Token).ConfigureAwait(false))
            {
                var envelope = EnvelopeCodec.Deserialize(r.GetFieldValue<byte[]>(1));
                result.Add(new RecoveredMessage(new SpooledMessage(r.GetInt64(0), envelope, r.GetInt64(2)), r.GetFieldValue<int[]>(3)));
            }
            return result;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
        {
            throw Wrap("query", ex);
        }
    }

    public async Task<IReadOnlyList<(string Domain, int Recipients)>> DomainsAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        using var cts = Timeout(ct);
        try
        {
            await using var conn = await _db.OpenConnectionAsync(cts.Token).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand(
                $"SELECT domain, count(*) FROM {_recipients} WHERE NOT done AND domain IS NOT NULL GROUP BY domain ORDER BY domain", conn)
                { CommandTimeout = TimeoutSeconds };
            await using var r = await cmd.ExecuteReaderAsync(cts.Token).ConfigureAwait(false);
            var result = new List<(string, int)>();
            while (await r.ReadAsync(cts.Token).ConfigureAwait(false)) result.Add((r.GetString(0), checked((int)r.GetInt64(1))));
            return result;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
        {
            throw Wrap("domain count", ex);
        }
    }

    private async Task RefreshCountAsync()
    {
        try
        {
            using var cts = Timeout(default);
            await using var conn = await _db.OpenConnectionAsync(cts.Token).ConfigureAwait(false);
            var n = await ScalarAsync(conn, $"SELECT count(*) FROM {_messages}", cts.Token).ConfigureAwait(false);
            Volatile.Write(ref _count, Convert.ToInt32(n, CultureInfo.InvariantCulture));
        }
        catch (Exception ex)
        {
            _log.Warning("spool_count_failed", $"PostgreSQL spool count refresh failed: {ex.Message}");
        }
        finally
        {
            Interlocked.Exchange(ref _countRefreshedAt, Stopwatch.GetTimestamp());
            Volatile.Write(ref _countRefreshing, 0);
        }
    }

    // ---------------------------------------------------------------- plumbing

    private int TimeoutSeconds => Math.Max(1, (int)Math.Ceiling(_options.CommandTimeout.TotalSeconds));

    /// <summary>The caller's token, the spool's shutdown and <see cref="PostgresSpoolOptions.CommandTimeout"/>.</summary>
    private CancellationTokenSource Timeout(CancellationToken ct)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct, _stopping.Token);
        cts.CancelAfter(_options.CommandTimeout);
        return cts;
    }

    private PostgresSpoolException Wrap(string what, Exception ex) => ex switch
    {
        PostgresSpoolException p => p,
        OperationCanceledException => new PostgresSpoolException(
            $"PostgreSQL spool {what} did not complete within {_options.CommandTimeout.TotalSeconds:0.#} s (or the spool is closing)", ex),
        _ => new PostgresSpoolException($"PostgreSQL spool {what} failed: {ex.Message}", ex),
    };

    private static async Task ExecAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string sql, CancellationToken ct, params (string Name, object Value)[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection conn, string sql, CancellationToken ct, params (string Name, object Value)[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value);
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Commits what is queued (bounded by <see cref="PostgresSpoolOptions.CommandTimeout"/>), then closes.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _appendQueue.Writer.TryComplete();
        _doneQueue.Writer.TryComplete();
        _stopping.CancelAfter(_options.CommandTimeout); // a dead database must not hold shutdown forever
        try { await Task.WhenAll(_appendLoop, _doneLoop).ConfigureAwait(false); }
        catch (Exception ex) { _log.Warning("spool_writer_failed", $"PostgreSQL spool writer stopped with error: {ex.Message}"); }
        await _db.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private sealed class AppendOp(long mid, Envelope envelope, byte[] envelopeBytes, string?[] domainKeys, MessageBody body, byte[]? bodyCopy,
        CancellationToken ct)
    {
        /// <summary>The body's bytes in an array of their own (small in-memory bodies), else null.</summary>
        public byte[]? BodyCopy { get; } = bodyCopy;
        public long Mid { get; } = mid;
        public Envelope Envelope { get; } = envelope;
        public byte[] EnvelopeBytes { get; } = envelopeBytes;
        public string?[] DomainKeys { get; } = domainKeys;
        public MessageBody Body { get; } = body;
        public CancellationToken Cancellation { get; } = ct;
        public TaskCompletionSource<SpooledMessage> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class DoneOp(long mid, int[] rids, CancellationToken ct)
    {
        public long Mid { get; } = mid;
        public int[] Rids { get; } = rids;
        public CancellationToken Cancellation { get; } = ct;
        public TaskCompletionSource<bool> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
