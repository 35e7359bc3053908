using System.Collections.Concurrent;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Spool.Tests;

/// <summary>The group-commit writer blocks in write/fsync; it must do so on its own thread, never on a thread-pool
/// thread the SMTP sessions and actors need (a pool thread stuck in fsync showed as seconds of accept latency).</summary>
public sealed class SpoolWriterThreadTests : SpoolTestBase
{
    [Fact]
    public async Task Writes_and_fsyncs_happen_off_the_thread_pool()
    {
        // The writer logs each segment roll (an fsync + file creation) from the thread that does the writing.
        var rolls = new ConcurrentQueue<(bool PoolThread, string? Name)>();
        var log = new MailLog(null, minimum: MailLogLevel.Debug);
        log.Written += e =>
        {
            if (e.Event == "spool_roll") rolls.Enqueue((Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.Name));
        };
        await using (var spool = new SegmentSpool(new SegmentSpoolOptions(Dir, SegmentSize: 4096), log))
        {
            for (var mid = 1; mid <= 12; mid++) await spool.AppendAsync(mid, Env(), Body(mid, 1000));
            Assert.Equal(12, spool.Appends);
        }
        Assert.NotEmpty(rolls);
        Assert.All(rolls, r =>
        {
            Assert.False(r.PoolThread);
            Assert.Equal("spool-writer", r.Name);
        });
    }
}
