using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Spool.Tests;

[CollectionDefinition(nameof(SpoolWriterWakeupTests), DisableParallelization = true)]
public sealed class SpoolWriterWakeupCollection;

/// <summary>Issue 15: the group-commit writer must start a batch without waiting for a thread-pool thread. Its wake-up
/// used to be a pool work item; with the pool backed up a batch waited hundreds of ms before its fsync began.</summary>
[Collection(nameof(SpoolWriterWakeupTests))]
public sealed class SpoolWriterWakeupTests : SpoolTestBase
{
    [Fact]
    public void An_append_is_written_while_every_thread_pool_thread_is_blocked()
    {
        // On a thread of its own: the test method may itself run on a pool thread.
        string? outcome = null;
        var t = new Thread(() => outcome = AppendWithThePoolBlocked());
        t.Start();
        t.Join();
        Assert.Equal("written", outcome);
    }

    private string AppendWithThePoolBlocked()
    {
        var spool = Open();
        spool.Recover(); // opens the spool and starts the writer thread
        ThreadPool.GetMaxThreads(out int maxWorkers, out int maxIo);
        ThreadPool.GetMinThreads(out int minWorkers, out _);
        int busy = Math.Max(Math.Max(ThreadPool.ThreadCount, minWorkers), Environment.ProcessorCount);
        using var gate = new ManualResetEventSlim();
        try
        {
            // Cap the pool at `busy` threads and block every one of them.
            if (!ThreadPool.SetMaxThreads(busy, maxIo)) return $"cannot cap the pool at {busy} threads";
            // One more blocker than threads: once one stays queued, every pool thread is busy (some may be blocked
            // elsewhere, e.g. the test runner's thread waiting for this one).
            for (int i = 0; i <= busy; i++)
                ThreadPool.UnsafeQueueUserWorkItem(_ => gate.Wait(), null);
            if (!SpinWait.SpinUntil(() => ThreadPool.PendingWorkItemCount > 0 && ThreadPool.ThreadCount <= busy, TimeSpan.FromSeconds(60)))
                return "the pool did not fill up";
            _ = spool.AppendAsync(1, Env(), Body(1)); // its completion resumes on the pool: not awaited here
            // Appends counts in the writer thread after the fsync; the bound only ends the test on old code.
            return SpinWait.SpinUntil(() => spool.Appends == 1, TimeSpan.FromSeconds(10)) ? "written" : "not written while the pool was blocked";
        }
        finally
        {
            gate.Set();
            ThreadPool.SetMaxThreads(maxWorkers, maxIo);
            spool.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
