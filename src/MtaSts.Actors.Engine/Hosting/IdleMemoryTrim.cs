using System.Runtime;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>
/// When to give memory back after a burst: the GC keeps the heap it grew to (a 100,000-destination "deliver now" left
/// 1,190 MiB RSS with 53 MiB live once every destination had passivated; only a full GC brought it to 437 MiB). A mail
/// gateway is bursty and mostly idle between bursts, so once the node is quiet and the GC holds far more than is live,
/// one aggressive collection (it decommits what it can) returns the difference to the OS. Pure: the caller samples.
/// </summary>
/// <param name="MinReclaimable">GC committed minus live after the last GC that makes a trim worth its pause.</param>
/// <param name="IdleAllocationRate">Bytes per second allocated since the last check below which the node counts as quiet.</param>
/// <param name="MinInterval">At most one trim in this time (each is a blocking full collection).</param>
public sealed record IdleTrimPolicy(long MinReclaimable, long IdleAllocationRate, TimeSpan MinInterval)
{
    public static IdleTrimPolicy Default { get; } = new(256L << 20, 1L << 20, TimeSpan.FromMinutes(3));

    /// <param name="committed">Bytes the GC has committed now.</param>
    /// <param name="live">Heap bytes after the last collection (what survived).</param>
    /// <param name="allocated">Bytes allocated since the last check.</param>
    /// <param name="elapsed">Time since the last check.</param>
    /// <param name="sinceLastTrim">Time since the last trim (null: never).</param>
    public bool ShouldTrim(long committed, long live, long allocated, TimeSpan elapsed, TimeSpan? sinceLastTrim) =>
        committed - live >= MinReclaimable
        && elapsed > TimeSpan.Zero && allocated / elapsed.TotalSeconds < IdleAllocationRate
        && (sinceLastTrim is null || sinceLastTrim >= MinInterval);
}

/// <summary>Samples the GC once a minute and trims per <see cref="IdleTrimPolicy"/> (logged with before/after).</summary>
public sealed class IdleMemoryTrim : IAsyncDisposable
{
    private readonly IdleTrimPolicy _policy;
    private readonly MailLog _log;
    private readonly Timer _timer;
    private long _lastAllocated = GC.GetTotalAllocatedBytes();
    private long _lastCheck = Environment.TickCount64;
    private long? _lastTrim;
    private int _busy;

    public IdleMemoryTrim(MailLog log, IdleTrimPolicy? policy = null, TimeSpan? interval = null)
    {
        _log = log;
        _policy = policy ?? IdleTrimPolicy.Default;
        var every = interval ?? TimeSpan.FromMinutes(1);
        _timer = new Timer(_ => Check(), null, every, every);
    }

    private void Check()
    {
        if (Interlocked.Exchange(ref _busy, 1) == 1) return;
        try
        {
            var now = Environment.TickCount64;
            var allocated = GC.GetTotalAllocatedBytes();
            var info = GC.GetGCMemoryInfo();
            var trim = _policy.ShouldTrim(info.TotalCommittedBytes, info.HeapSizeBytes, allocated - _lastAllocated,
                TimeSpan.FromMilliseconds(now - _lastCheck), _lastTrim is { } t ? TimeSpan.FromMilliseconds(now - t) : null);
            _lastAllocated = allocated;
            _lastCheck = now;
            if (!trim) return;
            var before = info.TotalCommittedBytes;
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            var after = GC.GetGCMemoryInfo(GCKind.Any);
            _lastTrim = Environment.TickCount64;
            _lastAllocated = GC.GetTotalAllocatedBytes();
            _log.Info("memory_trimmed", $"Memory trimmed while idle: GC committed {before >> 20} MiB -> {after.TotalCommittedBytes >> 20} MiB " +
                $"({after.HeapSizeBytes >> 20} MiB live)", ("before_mib", before >> 20), ("after_mib", after.TotalCommittedBytes >> 20),
                ("live_mib", after.HeapSizeBytes >> 20));
        }
        catch (Exception ex)
        {
            _log.Warning("memory_trim_failed", $"Memory trim failed: {ex.Message}");
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    public ValueTask DisposeAsync() => _timer.DisposeAsync();
}
