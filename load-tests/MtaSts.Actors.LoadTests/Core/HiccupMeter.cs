namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// The harness's own stalls, jHiccup-style: a dedicated thread sleeps 1 ms at a time and records how much later than
/// asked it woke. Whatever delays it (the harness's GC, the cores busy with generator, target and receiver, the host)
/// delays the generator's sends and the receiver's replies as well, so an accept-latency tail that the sleeper saw too
/// is the box's, not the target's. Recorded only while the run is measuring.
/// </summary>
public sealed class HiccupMeter
{
    private readonly LatencyHistogram _late = new();
    private readonly Func<bool> _measuring;
    private readonly Thread _thread;
    private readonly long _gcPauseStartTicks = GC.GetTotalPauseDuration().Ticks;
    private volatile bool _stop;

    public HiccupMeter(Func<bool> measuring)
    {
        _measuring = measuring;
        _thread = new Thread(Run) { IsBackground = true, Name = "hiccup-meter", Priority = ThreadPriority.Highest };
        _thread.Start();
    }

    private void Run()
    {
        while (!_stop)
        {
            var before = Clock.NowUs();
            Thread.Sleep(1);
            var late = Clock.NowUs() - before - 1_000;
            if (_measuring()) _late.Record(Math.Max(1, late));
        }
    }

    /// <summary>Oversleep of the 1 ms sleeper while measuring (µs), and the harness's GC pause time since the start.</summary>
    public (LatencySummary Late, double GcPauseMs) Stop()
    {
        _stop = true;
        _thread.Join();
        return (_late.Summary(), TimeSpan.FromTicks(GC.GetTotalPauseDuration().Ticks - _gcPauseStartTicks).TotalMilliseconds);
    }
}
