using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Engine.Tests.Hosting;

/// <summary>When the gateway gives the GC's retained memory back: a table, no clock, no GC.</summary>
public sealed class IdleTrimPolicyTests
{
    private const long MiB = 1L << 20;
    private static readonly TimeSpan Minute = TimeSpan.FromSeconds(60);

    [Theory]
    // committed MiB, allocated MiB over 60 s, minutes since the last trim (-1: never) → due (default policy: ≥ 256 MiB
    // committed, < 1 MiB/s allocated, 3 min after a trim that gained)
    [InlineData(1190, 10, -1, true)]    // after the 100,000-destination burst, quiet: trim
    [InlineData(1190, 10, 4, true)]     // quiet again (the actors passivated since), the last trim 4 minutes ago
    [InlineData(1190, 10, 2, false)]    // trimmed 2 minutes ago: not again yet
    [InlineData(1190, 600, -1, false)]  // 10 MiB/s allocated: busy, the heap is in use
    [InlineData(200, 0, -1, false)]     // 200 MiB committed: left alone
    public void Trims_only_a_quiet_node_holding_much_and_not_too_often(long committed, long allocated, int minutesSince, bool due)
    {
        var schedule = new IdleTrimSchedule(IdleTrimPolicy.Default);
        TimeSpan? since = minutesSince < 0 ? null : TimeSpan.FromMinutes(minutesSince);
        Assert.Equal(due, schedule.Due(committed * MiB, allocated * MiB, Minute, since));
    }

    [Fact]
    public void A_trim_that_gains_little_doubles_the_wait_up_to_the_maximum_and_a_large_gain_resets_it()
    {
        var schedule = new IdleTrimSchedule(IdleTrimPolicy.Default);
        schedule.Trimmed(897 * MiB, 328 * MiB); // the burst's garbage, actors still alive
        Assert.Equal(TimeSpan.FromMinutes(3), schedule.Interval);
        schedule.Trimmed(330 * MiB, 320 * MiB); // little: a big queue is live, not garbage
        Assert.Equal(TimeSpan.FromMinutes(6), schedule.Interval);
        Assert.False(schedule.Due(330 * MiB, 0, Minute, TimeSpan.FromMinutes(4)));
        for (var i = 0; i < 10; i++) schedule.Trimmed(330 * MiB, 329 * MiB);
        Assert.Equal(TimeSpan.FromHours(1), schedule.Interval);
        schedule.Trimmed(330 * MiB, 40 * MiB); // the destinations passivated meanwhile
        Assert.Equal(TimeSpan.FromMinutes(3), schedule.Interval);
    }

    [Fact]
    public void No_time_elapsed_is_never_quiet() =>
        Assert.False(new IdleTrimSchedule(IdleTrimPolicy.Default).Due(2000 * MiB, 0, TimeSpan.Zero, null));

    [Fact]
    public void The_native_heap_trim_gives_freed_C_heap_pages_back_to_the_kernel()
    {
        // 4,000 × 32 KiB from malloc (below glibc's mmap threshold: arena memory), touched, then all freed but the
        // last: free() cannot shrink the arena past the block still in use, so the pages stay resident until trimmed.
        const int count = 4000, size = 32 << 10;
        var blocks = new IntPtr[count];
        for (var i = 0; i < count; i++)
        {
            blocks[i] = System.Runtime.InteropServices.Marshal.AllocHGlobal(size);
            for (var o = 0; o < size; o += 4096) System.Runtime.InteropServices.Marshal.WriteByte(blocks[i], o, 1);
        }
        try
        {
            for (var i = 0; i < count - 1; i++) System.Runtime.InteropServices.Marshal.FreeHGlobal(blocks[i]);
            var before = Environment.WorkingSet;
            Assert.True(NativeHeap.Trim());
            var after = Environment.WorkingSet;
            Assert.True(before - after >= 60L << 20, $"RSS {before >> 20} MiB -> {after >> 20} MiB after the trim");
        }
        finally
        {
            System.Runtime.InteropServices.Marshal.FreeHGlobal(blocks[count - 1]);
        }
    }
}
