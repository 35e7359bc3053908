using MtaSts.Actors.Admin;

namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// The harness's own stalls, jHiccup-style: the gateway's <see cref="RuntimeLagProbe"/> (linked source) sleeping 1 ms at
/// a time, recording how much later than asked it woke. Whatever delays it (the harness's GC, the cores busy with
/// generator, target and receiver, the host) delays the generator's sends and the receiver's replies as well, so an
/// accept-latency tail that the sleeper saw too is the box's, not the target's. Recorded only while the run is measuring.
/// </summary>
public sealed class HiccupMeter
{
    private readonly LatencyHistogram _late = new();
    private readonly long _gcPauseStartTicks = GC.GetTotalPauseDuration().Ticks;
    private readonly RuntimeLagProbe _probe;

    public HiccupMeter(Func<bool> measuring) =>
        _probe = new RuntimeLagProbe(late => { if (measuring()) _late.Record(Math.Max(1, (long)(late * 1e6))); },
            poolLag: _ => { }, queue: _ => { }, period: TimeSpan.FromMilliseconds(1));

    /// <summary>Oversleep of the 1 ms sleeper while measuring (µs), and the harness's GC pause time since the start.</summary>
    public (LatencySummary Late, double GcPauseMs) Stop()
    {
        _probe.Dispose();
        return (_late.Summary(), TimeSpan.FromTicks(GC.GetTotalPauseDuration().Ticks - _gcPauseStartTicks).TotalMilliseconds);
    }
}
