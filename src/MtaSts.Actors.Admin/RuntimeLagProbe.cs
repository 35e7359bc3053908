using System.Diagnostics;

namespace MtaSts.Actors.Admin;

/// <summary>
/// How long the process and its thread pool make work wait — the "event-loop lag" an operator reads next to the accept
/// latency. A dedicated thread wakes every <see cref="Period"/>: how much later than asked it woke is a process stall
/// (a GC suspension, or no core free for a runnable thread); then it queues one work item on the thread pool, and the
/// time until that item runs is the pool's lag (every SMTP read, spool commit and actor turn continues there).
/// About 100 wake-ups a second: nothing against the mail path.
/// </summary>
public sealed class RuntimeLagProbe : IDisposable
{
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(10);
    private readonly Action<double> _stall, _poolLag;
    private readonly Thread _thread;
    private volatile bool _stop;

    /// <param name="stall">Seconds the probe thread woke late.</param>
    /// <param name="poolLag">Seconds a work item waited in the thread pool's queue.</param>
    public RuntimeLagProbe(Action<double> stall, Action<double> poolLag)
    {
        _stall = stall;
        _poolLag = poolLag;
        _thread = new Thread(Run) { IsBackground = true, Name = "runtime-lag-probe" };
        _thread.Start();
    }

    private void Run()
    {
        var periodTicks = (long)(Period.TotalSeconds * Stopwatch.Frequency);
        while (!_stop)
        {
            var before = Stopwatch.GetTimestamp();
            Thread.Sleep(Period);
            var woke = Stopwatch.GetTimestamp();
            _stall(Math.Max(0, woke - before - periodTicks) / (double)Stopwatch.Frequency);
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Probe._poolLag(Stopwatch.GetElapsedTime(s.Queued).TotalSeconds),
                (Probe: this, Queued: Stopwatch.GetTimestamp()), preferLocal: false);
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
