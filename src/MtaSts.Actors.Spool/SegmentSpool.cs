using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Win32.SafeHandles;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Spool;

/// <summary>
/// The durable spool: append-only segment files (<c>seg-00000001.log</c>, …) written by one writer loop with group
/// commit — every append and done-mark waiting when the loop wakes up is written, then ONE fsync covers them all,
/// then every waiter completes. Throughput therefore grows with concurrency while each <see cref="AppendAsync"/>
/// still completes only after its bytes are on disk (DESIGN.md "Durability invariant").
/// </summary>
/// <remarks>
/// <para>File layout. Segment = 16-byte header (<c>MTASPOOL</c>, u32 version, u32 reserved) followed by records:
/// <c>u32 payloadLength | u32 crc32(type + payload) | u8 type | payload</c>, little-endian.
/// Message payload: <c>i64 mid | i32 envLen | envelope (EnvelopeCodec) | i32 bodyLen | body</c>.
/// Done payload: <c>i64 mid | i32 count | i32 rid × count</c>.</para>
/// <para>Segment deletion. A non-active segment is deleted when none of its messages has an outstanding recipient
/// and every segment holding a message that one of its Done records refers to is already gone — otherwise deleting
/// it would lose those Done records and resurrect finished messages on restart.</para>
/// <para>MIDs. <c>highwater</c> holds the highest MID ever stored; it is rewritten (temp + fsync + rename + dir
/// fsync) on every segment roll and before any segment is deleted, so <see cref="HighestMid"/> survives even when
/// every segment has been deleted.</para>
/// <para>Opening is lazy: the first call to any member scans the directory (same work as <see cref="Recover"/>).</para>
/// </remarks>
public sealed class SegmentSpool : ISpool
{
    internal const int SegmentHeaderSize = 16;
    internal const int RecordHeaderSize = 9;
    internal const byte TypeMessage = 1;
    internal const byte TypeDone = 2;
    internal const uint SegmentFormatVersion = 1;
    internal const int MaxPayload = 1 << 30;
    internal static ReadOnlySpan<byte> Magic => "MTASPOOL"u8;
    private const string HighWaterFile = "highwater";
    private const string NextSegmentFile = "next-segment.tmp";

    private readonly SegmentSpoolOptions _options;
    private readonly MailLog _log;
    private readonly string _dir;
    private readonly object _gate = new();
    // Synchronous continuations: a TryWrite wakes the writer thread (blocked in WaitToReadAsync) directly. Otherwise the
    // wake-up is a thread-pool work item, and with the pool backed up (thousands of items at 2,500 msg/s on 2 cores)
    // a batch waited up to 427 ms for it before its fsync even began (issue 15, accept-latency).
    private readonly Channel<Op> _channel = Channel.CreateUnbounded<Op>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });

    // Guarded by _gate (read by callers, mutated by the writer loop).
    private readonly Dictionary<long, Entry> _index = new();
    // Envelopes decoded by the start-up scan, until Recover hands them out (then dropped).
    private Dictionary<long, Envelope>? _scanned = new();
    private readonly SortedDictionary<long, Segment> _segments = new();
    private long _highestMid;
    private bool _opened;
    private Exception? _fault;
    private bool _disposed;

    // Owned by the writer loop (and by Open before the loop starts).
    private Segment? _active;
    private FileStream? _activeStream;
    private long _activeLength;      // bytes written to the active segment (including not yet fsync'd)
    private long _activeCommitted;   // bytes known to be durable in the active segment
    private long _highWaterWritten;
    private bool _rolledInBatch;
    // Preallocation (issue 15): [_activeLength, _preallocatedTo) of the active segment is zeros and durable. While an
    // extension zero-fills from _extendingFrom on a thread of its own, the writer writes nothing at or past that offset.
    private long _preallocatedTo;
    private long _extendingFrom = long.MaxValue;
    private Task<long>? _extension;
    // The next segment, created, headed and zero-filled ahead of the roll on a thread of its own under a name recovery
    // does not read (NextSegmentFile); the roll renames it. Creating it at the roll made the writer wait for the whole
    // zero-fill of the new segment (its data starts where the fill starts): 40–60 ms without a commit once per segment,
    // the accept p99 spikes every 6–7 s at 4,500 msg/s (issue 15).
    private Task<(FileStream Stream, long PreallocatedTo)>? _next;
    private Task? _writer;

    private long _appends, _dones, _fsyncs, _bytesWritten, _batches, _segmentsDeleted;

    public SegmentSpool(SegmentSpoolOptions options, MailLog? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _log = log ?? MailLog.Null;
        _dir = Path.GetFullPath(options.Directory);
    }

    public string DirectoryPath => _dir;

    /// <summary>Appends acknowledged durable.</summary>
    public long Appends => Interlocked.Read(ref _appends);
    /// <summary>Done records written.</summary>
    public long DoneRecords => Interlocked.Read(ref _dones);
    /// <summary>fsyncs of segment data (group commits plus the flush before each roll).</summary>
    public long Fsyncs => Interlocked.Read(ref _fsyncs);
    /// <summary>Record bytes written to segments.</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);
    /// <summary>Writer-loop batches that wrote something.</summary>
    public long Batches => Interlocked.Read(ref _batches);
    public long SegmentsDeleted => Interlocked.Read(ref _segmentsDeleted);

    /// <summary>Raised on the writer thread after each group commit with the fsync's duration and the number of
    /// appends and done-marks it made durable (for metrics: the fsync is the floor of every 250's latency). Handlers
    /// must be cheap and must not throw; they delay the waiters of the batch.</summary>
    public event Action<TimeSpan, int>? GroupCommitted;

    /// <summary>Ids of the segment files currently on disk, ascending.</summary>
    public IReadOnlyList<long> SegmentIds { get { EnsureOpen(); lock (_gate) return _segments.Keys.ToArray(); } }

    public long HighestMid { get { EnsureOpen(); lock (_gate) return _highestMid; } }

    public int Count { get { EnsureOpen(); lock (_gate) return _index.Count; } }

    /// <summary>Slots the in-memory index holds (its arrays), for tests of the drain trim.</summary>
    internal int IndexCapacity { get { lock (_gate) return _index.Capacity; } }

    // A Dictionary keeps the arrays it grew to: after a burst of 100,000 queued messages was delivered, the empty index
    // still held ≈ 8.7 MB (DestinationMemoryBench, idle). Once it has drained to an eighth of its capacity, give them
    // back: O(count) ≤ capacity / 8, after at least 7/8 of the capacity in removals, so amortised O(1) per removal.
    private void TrimDrainedIndex()
    {
        if (_index.Capacity >= 4096 && _index.Count <= _index.Capacity / 8) _index.TrimExcess();
    }

    public IReadOnlyList<RecoveredMessage> Recover()
    {
        EnsureOpen();
        lock (_gate)
        {
            // The envelopes decoded by the start-up scan are handed out once and then dropped: a queued message keeps
            // only its location and outstanding RIDs here (a later call re-reads the envelope from its segment).
            var result = _index.OrderBy(kv => kv.Key)
                .Select(kv => new RecoveredMessage(
                    new SpooledMessage(kv.Key, _scanned?.GetValueOrDefault(kv.Key) ?? ReadEnvelope(kv.Key, kv.Value), kv.Value.BodyLength),
                    kv.Value.Rids.ToArray()))
                .ToArray();
            _scanned = null;
            return result;
        }
    }

    /// <remarks>Cancellation is honoured only until the writer loop picks the append up; once written, the call
    /// completes normally — a message that is on disk must not be reported as failed (its sender would retry and
    /// the spool would hold an orphan).</remarks>
    public async Task<SpooledMessage> AppendAsync(long mid, Envelope envelope, MessageBody body, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ArgumentNullException.ThrowIfNull(body);
        if (mid <= 0) throw new ArgumentOutOfRangeException(nameof(mid), "MIDs start at 1");
        if (envelope.Recipients.Count == 0) throw new ArgumentException("a message needs at least one recipient", nameof(envelope));
        ct.ThrowIfCancellationRequested();
        EnsureWritable();

        // Serialise and checksum on the caller's thread so that the single writer only copies bytes; the body's
        // CRC was computed while it arrived (MessageBodyWriter) and is combined with the prefix's.
        var env = EnvelopeCodec.Serialize(envelope);
        long payload = 8L + 4 + env.Length + 4 + body.Length;
        if (payload > MaxPayload) throw new ArgumentException($"message too large for the spool ({payload} bytes)", nameof(body));
        var prefix = new byte[RecordHeaderSize + 8 + 4 + env.Length + 4];
        var p = prefix.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(p, (uint)payload);
        p[8] = TypeMessage;
        BinaryPrimitives.WriteInt64LittleEndian(p[9..], mid);
        BinaryPrimitives.WriteInt32LittleEndian(p[17..], env.Length);
        env.CopyTo(p[21..]);
        BinaryPrimitives.WriteInt32LittleEndian(p[(21 + env.Length)..], (int)body.Length);
        uint crc = Crc32.Combine(Crc32.Compute(p[8..]), body.Crc, body.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], crc);

        var op = new AppendOp(mid, envelope, prefix, body, ct);
        if (!_channel.Writer.TryWrite(op)) throw new ObjectDisposedException(nameof(SegmentSpool));
        return await op.Completion.Task.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public string SpillDirectory => Path.Combine(_dir, "incoming");

    public async ValueTask<bool> MarkDoneAsync(long mid, IReadOnlyList<int> rids, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(rids);
        ct.ThrowIfCancellationRequested();
        EnsureWritable();
        if (rids.Count == 0) return false;
        var op = new DoneOp(mid, rids.ToArray(), ct);
        if (!_channel.Writer.TryWrite(op)) throw new ObjectDisposedException(nameof(SegmentSpool));
        return await op.Completion.Task.ConfigureAwait(false);
    }

    private Envelope ReadEnvelope(long mid, Entry e)
    {
        var handle = e.Segment.ReadHandle ??= File.OpenHandle(e.Segment.Path, FileMode.Open, FileAccess.Read,
            FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        var buffer = new byte[e.EnvelopeLength];
        long offset = e.BodyOffset - 4 - e.EnvelopeLength;
        int read = 0;
        while (read < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer.AsSpan(read), offset + read);
            if (n == 0) throw new InvalidDataException($"MID {mid}: segment ended inside the envelope");
            read += n;
        }
        return EnvelopeCodec.Deserialize(buffer);
    }

    public async ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(long mid, CancellationToken ct = default)
    {
        EnsureOpen();
        SafeFileHandle handle;
        long offset;
        int length;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_index.TryGetValue(mid, out var e)) throw new KeyNotFoundException($"MID {mid} is not in the spool");
            handle = e.Segment.ReadHandle ??= File.OpenHandle(e.Segment.Path, FileMode.Open, FileAccess.Read,
                FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
            offset = e.BodyOffset;
            length = e.BodyLength;
        }
        var buffer = new byte[length];
        int read = 0;
        while (read < length)
        {
            int n = await RandomAccess.ReadAsync(handle, buffer.AsMemory(read), offset + read, ct).ConfigureAwait(false);
            if (n == 0) throw new InvalidDataException($"MID {mid}: segment ended inside the body");
            read += n;
        }
        return buffer;
    }

    public bool CanReadMessages => true;

    public async ValueTask<SpooledMessage?> ReadMessageAsync(long mid, CancellationToken ct = default)
    {
        EnsureOpen();
        SafeFileHandle handle;
        long offset;
        int length, bodyLength;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_index.TryGetValue(mid, out var e)) return null;
            handle = e.Segment.ReadHandle ??= File.OpenHandle(e.Segment.Path, FileMode.Open, FileAccess.Read,
                FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
            offset = e.BodyOffset - 4 - e.EnvelopeLength;
            length = e.EnvelopeLength;
            bodyLength = e.BodyLength;
        }
        var buffer = new byte[length];
        int read = 0;
        while (read < length)
        {
            int n = await RandomAccess.ReadAsync(handle, buffer.AsMemory(read), offset + read, ct).ConfigureAwait(false);
            if (n == 0) throw new InvalidDataException($"MID {mid}: segment ended inside the envelope");
            read += n;
        }
        return new SpooledMessage(mid, EnvelopeCodec.Deserialize(buffer), bodyLength);
    }

    public ValueTask<Stream> OpenBodyAsync(long mid, CancellationToken ct = default)
    {
        EnsureOpen();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_index.TryGetValue(mid, out var e)) throw new KeyNotFoundException($"MID {mid} is not in the spool");
            var handle = e.Segment.ReadHandle ??= File.OpenHandle(e.Segment.Path, FileMode.Open, FileAccess.Read,
                FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
            return ValueTask.FromResult<Stream>(new FileRangeStream(handle, e.BodyOffset, e.BodyLength,
                _ => new InvalidDataException($"MID {mid}: segment ended inside the body")));
        }
    }

    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _channel.Writer.TryComplete();
        if (_writer is not null)
        {
            try { await _writer.ConfigureAwait(false); }
            catch (Exception ex) { _log.Warning("spool_writer_failed", $"Spool writer stopped with error: {ex.Message}"); }
        }
        try
        {
            if (_fault is null && _opened) WriteHighWater();
        }
        catch (IOException ex) { _log.Warning("spool_highwater_failed", $"Spool high-water write failed: {ex.Message}"); }
        _activeStream?.Dispose();
        lock (_gate)
        {
            foreach (var s in _segments.Values) s.ReadHandle?.Dispose();
        }
    }

    // ---------------------------------------------------------------- opening and recovery

    private void EnsureOpen()
    {
        if (Volatile.Read(ref _opened)) return;
        lock (_gate)
        {
            if (_opened) return;
            ObjectDisposedException.ThrowIf(_disposed, this);
            Open();
            _opened = true;
            _writer = StartWriterThread();
        }
    }

    private void EnsureWritable()
    {
        EnsureOpen();
        ObjectDisposedException.ThrowIf(_disposed, this);
        var fault = Volatile.Read(ref _fault);
        if (fault is not null) throw new SpoolFaultedException("spool is faulted after an I/O error; restart required", fault);
    }

    private void Open()
    {
        Directory.CreateDirectory(_dir);
        // Spill files of bodies that were still arriving when the process stopped: never acknowledged.
        if (Directory.Exists(SpillDirectory))
            foreach (var leftover in Directory.EnumerateFiles(SpillDirectory, "body-*.tmp"))
                File.Delete(leftover);
        _highestMid = _highWaterWritten = ReadHighWater();
        // A next segment prepared before the process stopped: never renamed, so nothing was written to it.
        File.Delete(Path.Combine(_dir, NextSegmentFile));
        var ids = Directory.EnumerateFiles(_dir, "seg-*.log")
            .Select(f => TryParseSegmentId(Path.GetFileName(f)))
            .Where(id => id > 0).Select(id => id!.Value).Order().ToList();
        for (int i = 0; i < ids.Count; i++)
            ScanSegment(ids[i], isLast: i == ids.Count - 1);

        if (_segments.Count == 0)
        {
            OpenNewActive(1);
        }
        else
        {
            var last = _segments.Values.Last();
            _active = last;
            _activeStream = new FileStream(last.Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1 << 18);
            _activeLength = _activeCommitted = _preallocatedTo = _activeStream.Length;
            _activeStream.Position = _activeLength;
        }
        TrimDrainedIndex();
        // Segments left over by a crash between "all done" and the delete.
        DeleteFinishedSegments();
        _log.Info("spool_open", $"Spool opened {_dir}: {_index.Count} messages outstanding, {_segments.Count} segments, highest MID {_highestMid}",
            ("messages", _index.Count), ("segments", _segments.Count), ("highest_mid", _highestMid));
    }

    private static long? TryParseSegmentId(string name) =>
        name.Length > 8 && long.TryParse(name.AsSpan(4, name.Length - 8), NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;

    private string SegmentPath(long id) => Path.Combine(_dir, $"seg-{id:D8}.log");

    private void ScanSegment(long id, bool isLast)
    {
        var path = SegmentPath(id);
        var seg = new Segment(id, path);
        _segments.Add(id, seg);
        using var fs = new FileStream(path, FileMode.Open, isLast ? FileAccess.ReadWrite : FileAccess.Read,
            FileShare.ReadWrite | FileShare.Delete, 1 << 20);
        long fileLength = fs.Length;
        var header = new byte[SegmentHeaderSize];
        if (fileLength < SegmentHeaderSize || fs.ReadAtLeast(header, SegmentHeaderSize, throwOnEndOfStream: false) < SegmentHeaderSize)
        {
            // Crash while creating the segment: nothing in it can have been acknowledged.
            if (!isLast) throw new InvalidDataException($"{path}: truncated segment header in a non-final segment");
            _log.Warning("spool_torn_tail", $"Spool segment {path} has a torn header ({fileLength} bytes); rewriting it",
                ("segment", id), ("offset", 0L));
            fs.SetLength(0);
            fs.Position = 0;
            fs.Write(NewSegmentHeader());
            fs.Flush(flushToDisk: true);
            return;
        }
        if (!header.AsSpan(0, 8).SequenceEqual(Magic))
            throw new InvalidDataException($"{path} is not a spool segment (bad magic)");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8));
        if (version != SegmentFormatVersion)
            throw new InvalidDataException($"{path}: unsupported segment format version {version}");

        long pos = SegmentHeaderSize;
        var rh = new byte[RecordHeaderSize];
        string? tornReason = null;
        while (pos < fileLength)
        {
            if (fileLength - pos < RecordHeaderSize) { tornReason = "partial record header"; break; }
            fs.ReadExactly(rh);
            if (isLast && rh.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                // Zeros: space preallocated ahead of the data, never acknowledged (a real record has a type byte).
                _log.Debug("spool_preallocated_tail", $"Spool segment {path}: {fileLength - pos} preallocated bytes at offset {pos} released",
                    ("segment", id), ("offset", pos));
                fs.SetLength(pos);
                fs.Flush(flushToDisk: true);
                return;
            }
            uint len = BinaryPrimitives.ReadUInt32LittleEndian(rh);
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(rh.AsSpan(4));
            byte type = rh[8];
            if (len > MaxPayload) { tornReason = $"implausible record length {len}"; break; }
            if (fileLength - pos - RecordHeaderSize < len) { tornReason = "partial record"; break; }
            var payload = ArrayPool<byte>.Shared.Rent((int)len);
            try
            {
                var span = payload.AsSpan(0, (int)len);
                fs.ReadExactly(span);
                if (Crc32.Append(Crc32.Compute(rh.AsSpan(8, 1)), span) != crc) { tornReason = "checksum mismatch"; break; }
                if (!ApplyScannedRecord(seg, type, span, pos)) { tornReason = $"malformed record type {type}"; break; }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(payload);
            }
            pos += RecordHeaderSize + len;
        }

        if (tornReason is null) return;
        if (isLast)
        {
            // A crash in the middle of a write leaves a partial or unchecksummed record at the end of the last
            // segment; nothing at or after it was acknowledged (acks follow the fsync), so it is cut off.
            _log.Warning("spool_torn_tail", $"Spool segment {path}: {tornReason} at offset {pos}; truncating {fileLength - pos} bytes",
                ("segment", id), ("offset", pos), ("bytes", fileLength - pos));
            fs.SetLength(pos);
            fs.Flush(flushToDisk: true);
        }
        else
        {
            // A finished segment was fsync'd before the roll: damage here is media corruption, not a torn write.
            // Keep the file for forensics and use what precedes the damage.
            _log.Critical("spool_segment_corrupt", $"Spool segment {path}: {tornReason} at offset {pos}; records after it are ignored",
                ("segment", id), ("offset", pos));
        }
    }

    private bool ApplyScannedRecord(Segment seg, byte type, ReadOnlySpan<byte> payload, long recordPos)
    {
        switch (type)
        {
            case TypeMessage:
            {
                if (payload.Length < 16) return false;
                long mid = BinaryPrimitives.ReadInt64LittleEndian(payload);
                int envLen = BinaryPrimitives.ReadInt32LittleEndian(payload[8..]);
                if (envLen < 0 || 12L + envLen + 4 > payload.Length) return false;
                int bodyLen = BinaryPrimitives.ReadInt32LittleEndian(payload[(12 + envLen)..]);
                if (bodyLen < 0 || 16L + envLen + bodyLen != payload.Length) return false;
                var envelope = EnvelopeCodec.Deserialize(payload.Slice(12, envLen));
                _highestMid = Math.Max(_highestMid, mid);
                if (_index.ContainsKey(mid))
                {
                    _log.Critical("spool_duplicate_mid", $"Spool segment {seg.Path}: duplicate MID {mid} ignored", ("mid", mid));
                    return true;
                }
                var entry = new Entry(seg, recordPos + RecordHeaderSize + 16 + envLen, bodyLen, envLen, RidSet.Of(envelope.Recipients.Select(r => r.Rid)));
                if (!entry.Rids.IsEmpty)
                {
                    _index.Add(mid, entry);
                    _scanned?.Add(mid, envelope);
                    seg.Live++;
                }
                return true;
            }
            case TypeDone:
            {
                if (payload.Length < 12) return false;
                long mid = BinaryPrimitives.ReadInt64LittleEndian(payload);
                int count = BinaryPrimitives.ReadInt32LittleEndian(payload[8..]);
                if (count < 0 || 12L + 4L * count != payload.Length) return false;
                _highestMid = Math.Max(_highestMid, mid);
                if (_index.TryGetValue(mid, out var e))
                {
                    if (e.Segment != seg) seg.DependsOn.Add(e.Segment.Id);
                    var done = new int[count];
                    for (int i = 0; i < count; i++)
                        done[i] = BinaryPrimitives.ReadInt32LittleEndian(payload[(12 + 4 * i)..]);
                    e = e with { Rids = e.Rids.Except(done) };
                    if (e.Rids.IsEmpty)
                    {
                        _index.Remove(mid);
                        _scanned?.Remove(mid);
                        e.Segment.Live--;
                    }
                    else _index[mid] = e;
                }
                return true;
            }
            default:
                return false;
        }
    }

    private static byte[] NewSegmentHeader()
    {
        var h = new byte[SegmentHeaderSize];
        Magic.CopyTo(h);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), SegmentFormatVersion);
        return h;
    }

    private void OpenNewActive(long id)
    {
        var path = SegmentPath(id);
        var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1 << 18);
        fs.Write(NewSegmentHeader());
        fs.Flush(flushToDisk: true);
        DirectorySync.Fsync(_dir); // the new name must be durable before anything acknowledged lives in it
        BecomeActive(id, path, fs, SegmentHeaderSize);
    }

    /// <summary>A new, durable, empty segment (its header written; zeros up to <paramref name="preallocatedTo"/>) becomes
    /// the active one.</summary>
    private void BecomeActive(long id, string path, FileStream stream, long preallocatedTo)
    {
        var seg = new Segment(id, path);
        lock (_gate) _segments.Add(id, seg);
        _active = seg;
        _activeStream = stream;
        _activeLength = _activeCommitted = SegmentHeaderSize;
        _preallocatedTo = preallocatedTo;
    }

    // ---------------------------------------------------------------- high-water MID

    private long ReadHighWater()
    {
        var path = Path.Combine(_dir, HighWaterFile);
        if (!File.Exists(path)) return 0;
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length != 12 || Crc32.Compute(bytes.AsSpan(0, 8)) != BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)))
        {
            _log.Critical("spool_highwater_corrupt", $"Spool high-water file {path} is corrupt; using segment contents only");
            return 0;
        }
        return BinaryPrimitives.ReadInt64LittleEndian(bytes);
    }

    private void WriteHighWater()
    {
        long value;
        lock (_gate) value = _highestMid;
        if (value <= _highWaterWritten) return;
        var bytes = new byte[12];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, value);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), Crc32.Compute(bytes.AsSpan(0, 8)));
        var tmp = Path.Combine(_dir, HighWaterFile + ".tmp");
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, Path.Combine(_dir, HighWaterFile), overwrite: true); // rename is atomic: old or new, never torn
        DirectorySync.Fsync(_dir);
        _highWaterWritten = value;
    }

    // ---------------------------------------------------------------- writer loop (group commit)

    /// <summary>
    /// The writer runs on a thread of its own: it blocks in write and fsync (one group commit after another, so under
    /// load it is nearly always inside one). On a thread-pool thread it would hold one of the pool's few threads (2 on a
    /// 2-core box) for as long as the load lasts, and the SMTP sessions and actors waiting for the pool would stall
    /// until the pool grew — accept latency spikes of seconds (issue 15, accept-latency). The task completes when the
    /// loop ends (faulted if it threw).
    /// </summary>
    private Task StartWriterThread()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                WriterLoop();
                done.TrySetResult();
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "spool-writer",
        };
        thread.Start();
        return done.Task;
    }

    private void WriterLoop()
    {
        var reader = _channel.Reader;
        var batch = new List<Op>();
        MaybeExtend();
        PrepareNextSegment();
        // Blocking on the wait is fine here: this is the writer's own thread, not the pool's.
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            batch.Clear();
            long bytes = 0;
            while (batch.Count < _options.MaxBatchOperations && bytes < _options.MaxBatchBytes && reader.TryRead(out var op))
            {
                batch.Add(op);
                bytes += op.Size;
            }
            if (_fault is not null)
            {
                foreach (var op in batch) op.Fail(new SpoolFaultedException("spool is faulted after an I/O error; restart required", _fault));
                continue;
            }
            ProcessBatch(batch);
        }
        if (_fault is not null) return;
        try
        {
            // Clean close: the active segment ends with its last record again.
            ReleasePreallocation();
            _activeStream?.Flush(flushToDisk: true);
            DiscardPreparedSegment();
        }
        catch (IOException ex) { _log.Warning("spool_preallocate_failed", $"Spool preallocation release failed: {ex.Message}", ("error", ex.GetType().Name)); }
    }

    private void ProcessBatch(List<Op> batch)
    {
        var written = new List<(Op Op, Segment Segment, long Offset)>(batch.Count);
        var batchMids = new HashSet<long>();
        try
        {
            foreach (var op in batch)
            {
                if (op.Cancellation.IsCancellationRequested) { op.Cancel(); continue; }
                switch (op)
                {
                    case AppendOp a:
                    {
                        bool duplicate;
                        lock (_gate) duplicate = _index.ContainsKey(a.Mid);
                        if (duplicate || !batchMids.Add(a.Mid))
                        {
                            a.Fail(new InvalidOperationException($"MID {a.Mid} is already in the spool"));
                            continue;
                        }
                        long recordLength = a.Prefix.Length + a.Body.Length;
                        if (_activeLength > SegmentHeaderSize && _activeLength + recordLength > _options.SegmentSize)
                            Roll();
                        long offset = _activeLength;
                        BeforeWrite(recordLength);
                        _activeStream!.Write(a.Prefix);
                        a.Body.CopyTo(_activeStream);
                        _activeLength += recordLength;
                        written.Add((a, _active!, offset + a.Prefix.Length));
                        break;
                    }
                    case DoneOp d:
                    {
                        int[] fresh;
                        lock (_gate)
                            fresh = _index.TryGetValue(d.Mid, out var e) ? d.Rids.Where(e.Rids.Contains).Distinct().ToArray() : [];
                        if (fresh.Length == 0) { written.Add((d, _active!, -1)); continue; } // idempotent: nothing new
                        var rec = new byte[RecordHeaderSize + 12 + 4 * fresh.Length];
                        var s = rec.AsSpan();
                        BinaryPrimitives.WriteUInt32LittleEndian(s, (uint)(12 + 4 * fresh.Length));
                        s[8] = TypeDone;
                        BinaryPrimitives.WriteInt64LittleEndian(s[9..], d.Mid);
                        BinaryPrimitives.WriteInt32LittleEndian(s[17..], fresh.Length);
                        for (int i = 0; i < fresh.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(s[(21 + 4 * i)..], fresh[i]);
                        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], Crc32.Compute(s[8..]));
                        if (_activeLength > SegmentHeaderSize && _activeLength + rec.Length > _options.SegmentSize)
                            Roll();
                        BeforeWrite(rec.Length);
                        _activeStream!.Write(rec);
                        _activeLength += rec.Length;
                        d.Fresh = fresh;
                        written.Add((d, _active!, _activeLength - rec.Length));
                        break;
                    }
                }
            }
            if (_activeLength != _activeCommitted)
            {
                long fsyncStart = Stopwatch.GetTimestamp();
                _activeStream!.Flush(flushToDisk: true); // the group commit: one fsync for the whole batch
                GroupCommitted?.Invoke(Stopwatch.GetElapsedTime(fsyncStart), written.Count);
                Interlocked.Increment(ref _fsyncs);
                Interlocked.Add(ref _bytesWritten, _activeLength - _activeCommitted);
                _activeCommitted = _activeLength;
                Interlocked.Increment(ref _batches);
            }
        }
        catch (Exception ex)
        {
            RecoverFromWriteFailure(ex);
            foreach (var (op, _, _) in written) op.Fail(ex);
            foreach (var op in batch) op.Fail(ex); // no-op for ops already completed
            return;
        }

        // Durable: publish to the index, then release the waiters.
        bool someFinished = false;
        lock (_gate)
        {
            foreach (var (op, seg, offset) in written)
            {
                switch (op)
                {
                    case AppendOp a:
                        _index[a.Mid] = new Entry(seg, offset, (int)a.Body.Length, a.Prefix.Length - RecordHeaderSize - 16,
                            RidSet.Of(a.Envelope.Recipients.Select(r => r.Rid)));
                        seg.Live++;
                        _highestMid = Math.Max(_highestMid, a.Mid);
                        break;
                    case DoneOp { Fresh: not null } d when _index.TryGetValue(d.Mid, out var e):
                        if (e.Segment != seg) seg.DependsOn.Add(e.Segment.Id);
                        e = e with { Rids = e.Rids.Except(d.Fresh) };
                        if (!e.Rids.IsEmpty) _index[d.Mid] = e;
                        else
                        {
                            _index.Remove(d.Mid);
                            e.Segment.Live--;
                            someFinished = true;
                            d.FinishedMessage = true;
                        }
                        break;
                }
            }
            if (someFinished) TrimDrainedIndex();
        }
        // Deleting before releasing the waiters makes "done" observable (SegmentIds) when MarkDoneAsync returns;
        // it costs latency only in the rare batch that actually frees a segment.
        if (someFinished || _rolledInBatch)
        {
            _rolledInBatch = false;
            try { DeleteFinishedSegments(); }
            catch (IOException ex) { _log.Warning("spool_delete_failed", $"Spool segment deletion failed: {ex.Message}"); }
        }
        foreach (var (op, _, _) in written)
        {
            if (op is AppendOp a)
            {
                Interlocked.Increment(ref _appends);
                a.Completion.TrySetResult(new SpooledMessage(a.Mid, a.Envelope, a.Body.Length));
            }
            else
            {
                if (op is DoneOp { Fresh: not null }) Interlocked.Increment(ref _dones);
                var done = (DoneOp)op;
                done.Completion.TrySetResult(done.FinishedMessage);
            }
        }
        MaybeExtend();
    }

    /// <summary>Before writing <paramref name="length"/> bytes at the end of the data: a zero-fill running over that
    /// range must finish first (it would overwrite them).</summary>
    private void BeforeWrite(long length)
    {
        if (_extension is not null && _activeLength + length > _extendingFrom) CollectExtension(wait: true);
    }

    private void CollectExtension(bool wait)
    {
        if (_extension is null || (!wait && !_extension.IsCompleted)) return;
        try { _preallocatedTo = _extension.GetAwaiter().GetResult(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Only an optimisation: writing past the preallocated end works, its fsync just costs a journal commit.
            _log.Warning("spool_preallocate_failed", $"Spool preallocation failed: {ex.Message}", ("error", ex.GetType().Name));
        }
        _extension = null;
        _extendingFrom = long.MaxValue;
    }

    /// <summary>Keeps at least half of <see cref="SegmentSpoolOptions.PreallocateBytes"/> zero-filled ahead of the data
    /// (never past the segment size), filled on a thread of its own so that no batch waits for it.</summary>
    private void MaybeExtend()
    {
        CollectExtension(wait: false);
        if (_extension is not null || _options.PreallocateBytes == 0 || Volatile.Read(ref _fault) is not null) return;
        long from = Math.Max(_preallocatedTo, _activeLength);
        if (from - _activeLength >= _options.PreallocateBytes / 2) return;
        long to = Math.Min(_options.SegmentSize, _activeLength + _options.PreallocateBytes);
        if (to <= from) return;
        _extendingFrom = from;
        var path = _active!.Path;
        _extension = Task.Factory.StartNew(() => ZeroFill(path, from, to), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private static long ZeroFill(string path, long from, long to)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        fs.Position = from;
        // 1 MiB per fsync: a group commit running meanwhile flushes at most that much of ours with its own data.
        WriteZeros(fs, to - from, fsyncEachChunk: true);
        return to;
    }

    /// <summary>Writes <paramref name="count"/> zero bytes at the stream's position, 1 MiB at a time.</summary>
    private static void WriteZeros(FileStream fs, long count, bool fsyncEachChunk)
    {
        if (count <= 0) return;
        var zeros = new byte[(int)Math.Min(1 << 20, count)];
        for (long done = 0; done < count; done += zeros.Length)
        {
            fs.Write(zeros, 0, (int)Math.Min(zeros.Length, count - done));
            if (fsyncEachChunk) fs.Flush(flushToDisk: true);
        }
    }

    /// <summary>Waits for a running zero-fill and cuts the active segment back to its data (before it stops being the
    /// active one: a finished segment must end with its last record).</summary>
    private void ReleasePreallocation()
    {
        CollectExtension(wait: true);
        if (_activeStream is null || _options.PreallocateBytes == 0) return;
        _activeStream.SetLength(_activeLength);
        _preallocatedTo = _activeLength;
    }

    private void Roll()
    {
        // Everything already in the old segment must be durable before it stops being the active one.
        _activeStream!.Flush();
        ReleasePreallocation();
        _activeStream.Flush(flushToDisk: true);
        Interlocked.Increment(ref _fsyncs);
        Interlocked.Add(ref _bytesWritten, _activeLength - _activeCommitted);
        _activeStream.Dispose();
        var next = _active!.Id + 1;
        if (TakePreparedSegment() is { } prepared) ActivatePrepared(next, prepared.Stream, prepared.PreallocatedTo);
        else OpenNewActive(next);
        WriteHighWater();
        PrepareNextSegment();
        _log.Debug("spool_roll", $"Spool rolled to segment {next}", ("segment", next));
        // No deletion here: the batch that rolled has written records into the closed segment that are not yet
        // published (Live counts, DependsOn); deleting now would unlink acknowledged mail. ProcessBatch deletes
        // after publishing.
        _rolledInBatch = true;
    }

    /// <summary>Starts preparing the segment after the active one (once at a time): created as
    /// <see cref="NextSegmentFile"/>, its header written and <see cref="SegmentSpoolOptions.PreallocateBytes"/> zero-filled,
    /// all fsync'd.</summary>
    private void PrepareNextSegment()
    {
        if (_next is not null || Volatile.Read(ref _fault) is not null) return;
        var path = Path.Combine(_dir, NextSegmentFile);
        long fill = Math.Min(_options.PreallocateBytes, _options.SegmentSize - SegmentHeaderSize);
        _next = Task.Factory.StartNew(() =>
        {
            var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1 << 18);
            try
            {
                fs.Write(NewSegmentHeader());
                WriteZeros(fs, fill, fsyncEachChunk: false); // nobody else writes this file yet: one fsync at the end
                fs.Flush(flushToDisk: true);
                fs.Position = SegmentHeaderSize;
                return (fs, SegmentHeaderSize + Math.Max(0, fill));
            }
            catch
            {
                fs.Dispose();
                throw;
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The prepared next segment (waiting for it if it is still being filled), or null when its preparation
    /// failed (logged; the roll then creates the segment itself).</summary>
    private (FileStream Stream, long PreallocatedTo)? TakePreparedSegment()
    {
        var task = _next;
        _next = null;
        if (task is null) return null;
        try { return task.GetAwaiter().GetResult(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _log.Warning("spool_prepare_failed", $"Spool could not prepare the next segment: {ex.Message}", ("error", ex.GetType().Name));
            return null;
        }
    }

    private void ActivatePrepared(long id, FileStream stream, long preallocatedTo)
    {
        var path = SegmentPath(id);
        try
        {
            File.Move(Path.Combine(_dir, NextSegmentFile), path);
            DirectorySync.Fsync(_dir); // the new name must be durable before anything acknowledged lives in it
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        BecomeActive(id, path, stream, preallocatedTo);
    }

    /// <summary>At close: a prepared segment that never became active is removed.</summary>
    private void DiscardPreparedSegment()
    {
        try
        {
            if (TakePreparedSegment() is { } prepared) prepared.Stream.Dispose();
            File.Delete(Path.Combine(_dir, NextSegmentFile));
        }
        catch (IOException ex) { _log.Warning("spool_prepare_failed", $"Spool could not remove the prepared segment: {ex.Message}"); }
    }

    private void RecoverFromWriteFailure(Exception ex)
    {
        _log.Critical("spool_write_failed", $"Spool write failed: {ex.Message}", ("error", ex.GetType().Name));
        try
        {
            // Cut the failed batch off so that later records are not written after garbage (which recovery would
            // treat as a torn tail, discarding acknowledged messages behind it).
            CollectExtension(wait: true);
            _activeStream!.SetLength(_activeCommitted);
            _activeStream.Position = _activeCommitted;
            _preallocatedTo = _activeCommitted;
            _activeStream.Flush(flushToDisk: true);
            _activeLength = _activeCommitted;
        }
        catch (Exception again)
        {
            Volatile.Write(ref _fault, again);
            _log.Critical("spool_faulted", $"Spool cannot restore the active segment ({again.Message}); refusing writes until restart");
        }
    }

    private void DeleteFinishedSegments()
    {
        while (true)
        {
            List<Segment> wave;
            lock (_gate)
            {
                wave = _segments.Values.Where(s => s != _active && s.Live == 0 && s.DependsOn.All(d => !_segments.ContainsKey(d))).ToList();
            }
            if (wave.Count == 0) return;
            WriteHighWater(); // HighestMid must survive the deletion of the segments that prove it
            var handles = new List<SafeFileHandle>(wave.Count);
            foreach (var s in wave)
            {
                // The blocks of an unlinked file are freed when its last handle closes, all at once: 45–120 ms for a
                // 64 MiB segment on ext4 mounted with discard (measured under accept-latency load, issue 15), and the
                // group commits' fsyncs wait for the journal commit that frees them — every 250 stalled once per
                // segment. So the unlink leaves a writable handle open (the unlink then only removes the name) and a
                // thread of its own truncates the file in steps before closing it (ReleaseGradually), as RocksDB's
                // delete scheduler does for the same reason.
                var handle = OpenForRelease(s.Path);
                File.Delete(s.Path);
                SafeFileHandle? readHandle;
                lock (_gate) // Live == 0: no index entry points here, so nothing opens a read handle meanwhile
                {
                    _segments.Remove(s.Id);
                    readHandle = s.ReadHandle;
                    s.ReadHandle = null;
                }
                readHandle?.Dispose(); // not the last handle while ours is open: cheap
                if (handle is not null) handles.Add(handle);
                Interlocked.Increment(ref _segmentsDeleted);
                _log.Debug("spool_segment_deleted", $"Spool segment {s.Id} deleted (all messages done)", ("segment", s.Id));
            }
            // Persist this wave's unlinks before the next wave, whose Done records may refer to these segments.
            DirectorySync.Fsync(_dir);
            if (handles.Count > 0) ReleaseSegmentHandles(handles);
        }
    }

    private static SafeFileHandle? OpenForRelease(string path)
    {
        try { return File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; } // the unlink frees it then
    }

    /// <summary>How much of a deleted segment one truncation step frees, and the pause after each step.</summary>
    internal const long ReleaseChunkBytes = 4L * 1024 * 1024;
    internal static readonly TimeSpan ReleasePause = TimeSpan.FromMilliseconds(20);

    /// <summary>Frees the blocks of deleted segments (see <see cref="DeleteFinishedSegments"/>) on a thread of its own;
    /// tests replace it to hold the release and check that nothing waits for it.</summary>
    internal Action<IReadOnlyList<SafeFileHandle>> ReleaseSegmentHandles { get; set; } = handles =>
        new Thread(() =>
        {
            foreach (var h in handles) ReleaseGradually(h, ReleaseChunkBytes, ReleasePause);
        }) { IsBackground = true, Name = "spool-segment-release" }.Start();

    /// <summary>Truncates an unlinked file by <paramref name="chunk"/> bytes per step with a pause after each, then
    /// closes it: each journal commit frees (and discards) at most a chunk. Errors only end the steps early: closing
    /// the handle frees the rest.</summary>
    internal static void ReleaseGradually(SafeFileHandle handle, long chunk, TimeSpan pause, Action<long>? onStep = null)
    {
        try
        {
            for (long length = RandomAccess.GetLength(handle); length > 0;)
            {
                length = Math.Max(0, length - chunk);
                RandomAccess.SetLength(handle, length);
                onStep?.Invoke(length);
                if (length > 0) Thread.Sleep(pause);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        finally
        {
            handle.Dispose();
        }
    }

    // ---------------------------------------------------------------- types

    private sealed class Segment(long id, string path)
    {
        public long Id { get; } = id;
        public string Path { get; } = path;
        public int Live { get; set; }
        public HashSet<long> DependsOn { get; } = new();
        public SafeFileHandle? ReadHandle { get; set; }
    }

    /// <summary>Where a queued message is and which RIDs are still outstanding — nothing else, and no object per
    /// message (a struct in the dictionary's own array): a million queued messages cost ~60 MB here (the envelope
    /// lives in the segment and is read back by <see cref="ReadMessageAsync"/>).</summary>
    private readonly record struct Entry(Segment Segment, long BodyOffset, int BodyLength, int EnvelopeLength, RidSet Rids);

    private abstract class Op(CancellationToken ct)
    {
        public CancellationToken Cancellation { get; } = ct;
        public abstract long Size { get; }
        public abstract void Fail(Exception ex);
        public abstract void Cancel();
    }

    private sealed class AppendOp(long mid, Envelope envelope, byte[] prefix, MessageBody body, CancellationToken ct) : Op(ct)
    {
        public long Mid { get; } = mid;
        public Envelope Envelope { get; } = envelope;
        public byte[] Prefix { get; } = prefix;
        public MessageBody Body { get; } = body;
        public TaskCompletionSource<SpooledMessage> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public override long Size => Prefix.Length + Body.Length;
        public override void Fail(Exception ex) => Completion.TrySetException(ex);
        public override void Cancel() => Completion.TrySetCanceled(Cancellation);
    }

    private sealed class DoneOp(long mid, int[] rids, CancellationToken ct) : Op(ct)
    {
        public long Mid { get; } = mid;
        public int[] Rids { get; } = rids;
        public int[]? Fresh { get; set; }
        /// <summary>This op removed the message's last outstanding RID.</summary>
        public bool FinishedMessage { get; set; }
        public TaskCompletionSource<bool> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public override long Size => 21 + 4L * Rids.Length;
        public override void Fail(Exception ex) => Completion.TrySetException(ex);
        public override void Cancel() => Completion.TrySetCanceled(Cancellation);
    }
}
