using System.Diagnostics;

namespace MtaSts.Actors.Admin;

/// <summary>
/// How long the process and its thread pool make work wait — the "event-loop lag" an operator reads next to the accept
/// latency. A dedicated thread wakes every period (10 ms): how much later than asked it woke is a process stall
/// (a GC suspension, or no core free for a runnable thread); then it queues one work item on the thread pool, and the
/// time until that item runs is the pool's lag (every SMTP read, spool commit and actor turn continues there).
/// About 100 wake-ups a second: nothing against the mail path. (The load-test harness links this file to watch its own
/// stalls with a 1 ms period.)
/// </summary>
public sealed class RuntimeLagProbe : IDisposable
{
    public static readonly TimeSpan DefaultPeriod = TimeSpan.FromMilliseconds(10);
    private readonly TimeSpan _period;
    private readonly Action<double> _stall, _poolLag;
    private readonly Action<Action> _queue;
    private readonly Thread _thread;
    private volatile bool _stop;

    /// <param name="stall">Seconds the probe thread woke late.</param>
    /// <param name="poolLag">Seconds a work item waited in the thread pool's queue.</param>
    /// <param name="queue">Where the work item is queued (default: the thread pool's global queue; tests pass their own).</param>
    /// <param name="period">How long the probe sleeps between samples (default <see cref="DefaultPeriod"/>).</param>
    public RuntimeLagProbe(Action<double> stall, Action<double> poolLag, Action<Action>? queue = null, TimeSpan? period = null)
    {
        _period = period ?? DefaultPeriod;
        _stall = stall;
        _poolLag = poolLag;
        _queue = queue ?? (static work => ThreadPool.UnsafeQueueUserWorkItem(static w => w(), work, preferLocal: false));
        _thread = new Thread(Run) { IsBackground = true, Name = "runtime-lag-probe" };
        _thread.Start();
    }

    private void Run()
    {
        var periodTicks = (long)(_period.TotalSeconds * Stopwatch.Frequency);
        while (!_stop)
        {
            var before = Stopwatch.GetTimestamp();
            Thread.Sleep(_period);
            var woke = Stopwatch.GetTimestamp();
            _stall(Math.Max(0, woke - before - periodTicks) / (double)Stopwatch.Frequency);
            var queued = Stopwatch.GetTimestamp();
            _queue(() => _poolLag(Stopwatch.GetElapsedTime(queued).TotalSeconds));
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
