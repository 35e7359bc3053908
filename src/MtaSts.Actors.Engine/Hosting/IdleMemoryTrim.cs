using System.Runtime;
using System.Runtime.InteropServices;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>
/// When to give memory back after a burst: the GC keeps the heap it grew to (a 100,000-destination "deliver now" left
/// 1,190 MiB RSS with 53 MiB live once every destination had passivated; only a full GC brought it to 437 MiB). A mail
/// gateway is bursty and mostly idle between bursts, so while the node is quiet and the GC holds a lot, an aggressive
/// collection (it decommits what it can) returns what is garbage. What is garbage is only known by collecting (an idle
/// node runs no GC, so "live after the last GC" is stale): a trim that gained little doubles the wait before the next,
/// one that gained much resets it. Pure: the caller samples the GC and does the collection.
/// </summary>
/// <param name="MinCommitted">GC committed bytes below which the node is left alone.</param>
/// <param name="IdleAllocationRate">Bytes per second allocated since the last check below which the node counts as quiet.</param>
/// <param name="MinInterval">The wait between trims after one that gained at least <paramref name="MinGain"/>.</param>
/// <param name="MaxInterval">The longest wait (a quiet node holding a large queue is collected this often).</param>
public sealed record IdleTrimPolicy(long MinCommitted, long IdleAllocationRate, TimeSpan MinInterval, TimeSpan MaxInterval, long MinGain)
{
    public static IdleTrimPolicy Default { get; } = new(256L << 20, 1L << 20, TimeSpan.FromMinutes(3), TimeSpan.FromHours(1), 64L << 20);
}

/// <summary>The trim schedule of one process (<see cref="IdleTrimPolicy"/>); not thread-safe (one timer uses it).</summary>
public sealed class IdleTrimSchedule(IdleTrimPolicy policy)
{
    public TimeSpan Interval { get; private set; } = policy.MinInterval;

    /// <param name="committed">Bytes the GC has committed now.</param>
    /// <param name="allocated">Bytes allocated since the last check.</param>
    /// <param name="elapsed">Time since the last check.</param>
    /// <param name="sinceLastTrim">Time since the last trim (null: never).</param>
    public bool Due(long committed, long allocated, TimeSpan elapsed, TimeSpan? sinceLastTrim) =>
        committed >= policy.MinCommitted
        && elapsed > TimeSpan.Zero && allocated / elapsed.TotalSeconds < policy.IdleAllocationRate
        && (sinceLastTrim is null || sinceLastTrim >= Interval);

    /// <summary>A trim took committed memory from <paramref name="before"/> to <paramref name="after"/> bytes.</summary>
    public void Trimmed(long before, long after) =>
        Interval = before - after >= policy.MinGain ? policy.MinInterval
            : TimeSpan.FromTicks(Math.Min(Interval.Ticks * 2, policy.MaxInterval.Ticks));
}

/// <summary>Samples the GC once a minute and trims per <see cref="IdleTrimSchedule"/> (logged with before/after).</summary>
public sealed class IdleMemoryTrim : IAsyncDisposable
{
    private readonly IdleTrimSchedule _schedule;
    private readonly MailLog _log;
    private readonly Timer _timer;
    private long _lastAllocated = GC.GetTotalAllocatedBytes();
    private long _lastCheck = Environment.TickCount64;
    private long? _lastTrim;
    private int _busy;

    public IdleMemoryTrim(MailLog log, IdleTrimPolicy? policy = null, TimeSpan? interval = null)
    {
        _log = log;
        _schedule = new IdleTrimSchedule(policy ?? IdleTrimPolicy.Default);
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
            var trim = _schedule.Due(info.TotalCommittedBytes, allocated - _lastAllocated, TimeSpan.FromMilliseconds(now - _lastCheck),
                _lastTrim is { } t ? TimeSpan.FromMilliseconds(now - t) : null);
            _lastAllocated = allocated;
            _lastCheck = now;
            if (!trim) return;
            var before = info.TotalCommittedBytes;
            var rssBefore = Environment.WorkingSet;
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            var after = GC.GetGCMemoryInfo(GCKind.Any);
            NativeHeap.Trim();
            var rssAfter = Environment.WorkingSet;
            _lastTrim = Environment.TickCount64;
            _lastAllocated = GC.GetTotalAllocatedBytes();
            _schedule.Trimmed(before, after.TotalCommittedBytes);
            _log.Info("memory_trimmed", $"Memory trimmed while idle: GC committed {before >> 20} MiB -> {after.TotalCommittedBytes >> 20} MiB " +
                $"({after.HeapSizeBytes >> 20} MiB live), RSS {rssBefore >> 20} MiB -> {rssAfter >> 20} MiB",
                ("before_mib", before >> 20), ("after_mib", after.TotalCommittedBytes >> 20), ("live_mib", after.HeapSizeBytes >> 20),
                ("rss_before_mib", rssBefore >> 20), ("rss_after_mib", rssAfter >> 20));
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

/// <summary>
/// Gives the C heap's free pages back to the kernel. glibc keeps what native code freed (SQLite's page cache, OpenSSL's
/// per-connection state after a burst of thousands of TLS sessions, socket buffers) in its arenas; the GC's trim does
/// not touch them. <c>malloc_trim(0)</c> releases free memory at the top of every arena and, since glibc 2.8, whole
/// free pages inside them (madvise DONTNEED). Only on Linux with glibc; elsewhere (musl, macOS, Windows) a no-op.
/// </summary>
public static class NativeHeap
{
    private static bool _unavailable;

    /// <summary>True when the trim ran (Linux + glibc).</summary>
    public static bool Trim()
    {
        if (!OperatingSystem.IsLinux() || Volatile.Read(ref _unavailable)) return false;
        try
        {
            MallocTrim(0);
            return true;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            Volatile.Write(ref _unavailable, true);
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);
}
