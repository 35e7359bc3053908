using System.Collections.Concurrent;
using System.Globalization;
using MtaSts.Actors.Admin;

namespace MtaSts.Actors.Host.Tests.Admin;

public sealed class RuntimeLagProbeTests
{
    [Fact]
    public async Task A_thread_pool_busy_with_blocking_work_shows_as_lag()
    {
        var lags = new ConcurrentQueue<double>();
        var stalls = new ConcurrentQueue<double>();
        using var probe = new RuntimeLagProbe(stalls.Enqueue, lags.Enqueue);
        // Every pool thread (and a few it may add) sleeps 600 ms: a probe item queued behind them waits, FIFO.
        // Thread.Sleep, not a wait handle: the pool adds threads at once for work blocked in its own waits.
        // Above the minimum too: below it the pool starts a thread for every queued item at once.
        ThreadPool.GetMinThreads(out var minWorkers, out _);
        var blockers = Enumerable.Range(0, Math.Max(ThreadPool.ThreadCount, minWorkers) + 8)
            .Select(_ => Task.Factory.StartNew(() => Thread.Sleep(600), CancellationToken.None, TaskCreationOptions.PreferFairness, TaskScheduler.Default))
            .ToArray();
        await Task.WhenAll(blockers);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline && !lags.Any(l => l >= 0.2)) await Task.Delay(50);
        Assert.True(lags.Any(l => l >= 0.2), $"largest pool lag seen {lags.DefaultIfEmpty(0).Max():0.000} s over {lags.Count} samples");
        Assert.NotEmpty(stalls); // the probe thread itself runs off the pool
    }
}
