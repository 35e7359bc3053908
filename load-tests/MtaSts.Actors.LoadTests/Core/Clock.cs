using System.Diagnostics;

namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// One monotonic clock for the whole harness, in microseconds. Generator, receiver and sampler share it,
/// so end-to-end latency is a plain subtraction and wall-clock jumps (NTP) can't distort it.
/// </summary>
public static class Clock
{
    private static readonly long StartTicks = Stopwatch.GetTimestamp();
    private static readonly long StartUnixUs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
    private static readonly double UsPerTick = 1_000_000.0 / Stopwatch.Frequency;

    /// <summary>Microseconds since the harness started.</summary>
    public static long NowUs() => (long)((Stopwatch.GetTimestamp() - StartTicks) * UsPerTick);

    /// <summary>Unix time in µs for a harness timestamp: written into X-Load-Sent so that an external receiver can compute latency too.</summary>
    public static long ToUnixUs(long harnessUs) => StartUnixUs + harnessUs;

    public static DateTimeOffset ToWallClock(long harnessUs) => DateTimeOffset.FromUnixTimeMilliseconds(ToUnixUs(harnessUs) / 1000);

    /// <summary>Waits until a harness timestamp. Task.Delay is ~1 ms coarse, so the open model enqueues every message that is due on each wake-up.</summary>
    public static async Task WaitUntilAsync(long dueUs, CancellationToken ct)
    {
        var remaining = dueUs - NowUs();
        if (remaining > 1500) await Task.Delay(TimeSpan.FromMicroseconds(remaining - 1000), ct).ConfigureAwait(false);
        else if (remaining > 0) await Task.Yield();
    }
}
