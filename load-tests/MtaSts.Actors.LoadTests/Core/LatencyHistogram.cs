using HdrHistogram;

namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// A thread-safe latency recorder (µs) that gives both interval snapshots (for the time series) and the
/// cumulative distribution (for the summary). HdrHistogram's Recorder swaps buffers without locking writers.
/// Values recorded with measuring=false (warm-up) go to the time series only.
/// </summary>
public sealed class LatencyHistogram
{
    // One hour in µs: anything slower is a stuck run, and it still fits with 3 significant digits.
    public const long HighestUs = 3_600_000_000L;
    // Many threads record at once (generator sessions, receiver sessions): the recorder's histograms must take concurrent
    // increments. With LongHistogram lost increments left TotalCount above the sum of the counts, and reading the
    // interval (GetMaxValue) ran off the end of the counts array (ArgumentOutOfRangeException) and ended the harness.
    private readonly Recorder _recorder = new(1, HighestUs, 3, (id, low, high, digits) => new LongConcurrentHistogram(id, low, high, digits));
    private readonly LongConcurrentHistogram _total = new(1, HighestUs, 3);
    private readonly object _gate = new();
    private HistogramBase? _recycle;

    public void Record(long valueUs, bool measuring = true)
    {
        if (valueUs < 1) valueUs = 1;
        if (valueUs > HighestUs) valueUs = HighestUs;
        _recorder.RecordValue(valueUs);
        if (measuring) _total.RecordValue(valueUs);
    }

    /// <summary>Takes the values recorded since the last call (warm-up included) for the time series.</summary>
    public IntervalSnapshot TakeInterval()
    {
        lock (_gate)
        {
            var interval = _recorder.GetIntervalHistogram(_recycle);
            _recycle = interval;
            try
            {
                return interval.TotalCount == 0
                    ? new IntervalSnapshot(0, 0, 0, 0)
                    : new IntervalSnapshot(interval.TotalCount, interval.GetValueAtPercentile(50), interval.GetValueAtPercentile(99), interval.GetMaxValue());
            }
            catch (ArgumentOutOfRangeException)
            {
                // A 1 s plot point is not worth a run: an inconsistent snapshot is dropped.
                return new IntervalSnapshot(0, 0, 0, 0);
            }
        }
    }

    public LatencySummary Summary()
    {
        lock (_gate)
        {
            // Late values (a retried delivery arriving while the summary is read) can make one read inconsistent: read
            // a copy, and try again if even that was caught mid-update.
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    var h = _total.Copy();
                    if (h.TotalCount == 0) return LatencySummary.Empty;
                    return new LatencySummary(h.TotalCount, h.GetMean(), h.GetValueAtPercentile(50), h.GetValueAtPercentile(90),
                        h.GetValueAtPercentile(99), h.GetValueAtPercentile(99.9), h.GetMaxValue());
                }
                catch (ArgumentOutOfRangeException) when (attempt < 5)
                {
                    Thread.Sleep(10);
                }
            }
        }
    }
}

public readonly record struct IntervalSnapshot(long Count, long P50Us, long P99Us, long MaxUs);

/// <summary>Latency distribution in µs (reports print ms).</summary>
public sealed record LatencySummary(long Count, double MeanUs, long P50Us, long P90Us, long P99Us, long P999Us, long MaxUs)
{
    public static readonly LatencySummary Empty = new(0, 0, 0, 0, 0, 0, 0);
}
