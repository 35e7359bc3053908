using System.Collections.Concurrent;
using MtaSts.Actors.Admin;

namespace MtaSts.Actors.Host.Tests.Admin;

public sealed class RuntimeLagProbeTests
{
    /// <summary>A queue that runs each work item 300 ms after it was queued stands in for a backed-up thread pool
    /// (a real one is not reproducible under a parallel test run: the pool adds threads when blocked).</summary>
    [Fact]
    public async Task A_work_item_that_waits_in_the_queue_is_measured_as_lag()
    {
        var lags = new ConcurrentQueue<double>();
        var stalls = new ConcurrentQueue<double>();
        using (new RuntimeLagProbe(stalls.Enqueue, lags.Enqueue, work => _ = Task.Delay(300).ContinueWith(_ => work(), TaskScheduler.Default)))
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (DateTime.UtcNow < deadline && lags.Count < 5) await Task.Delay(50);
        }
        Assert.True(lags.Count >= 5, $"{lags.Count} lag samples");
        Assert.All(lags, l => Assert.InRange(l, 0.29, 10)); // at least the 300 ms the item was held
        Assert.NotEmpty(stalls);
        Assert.All(stalls, s => Assert.True(s >= 0));
    }

    [Fact]
    public async Task On_the_thread_pool_every_queued_item_runs_and_is_recorded()
    {
        var lags = new ConcurrentQueue<double>();
        using (new RuntimeLagProbe(_ => { }, lags.Enqueue))
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (DateTime.UtcNow < deadline && lags.Count < 10) await Task.Delay(50);
        }
        Assert.True(lags.Count >= 10, $"{lags.Count} lag samples");
        Assert.All(lags, l => Assert.True(l >= 0));
    }
}
