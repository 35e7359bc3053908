using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Engine.Tests.Hosting;

/// <summary>When the gateway gives the GC's retained memory back: a table, no clock, no GC.</summary>
public sealed class IdleTrimPolicyTests
{
    private const long MiB = 1L << 20;
    private static readonly IdleTrimPolicy Policy = IdleTrimPolicy.Default; // 256 MiB reclaimable, < 1 MiB/s, 3 min apart

    [Theory]
    // committed MiB, live MiB, allocated MiB over 60 s, minutes since the last trim (-1: never) → trim
    [InlineData(1190, 53, 10, -1, true)]    // after the 100,000-destination burst, quiet: trim
    [InlineData(1190, 53, 10, 4, true)]     // quiet again (the actors passivated since), the last trim 4 minutes ago
    [InlineData(1190, 53, 10, 2, false)]    // trimmed 2 minutes ago: not again yet
    [InlineData(1190, 53, 600, -1, false)]  // 10 MiB/s allocated: busy, the heap is in use
    [InlineData(300, 100, 0, -1, false)]    // 200 MiB reclaimable: not worth a full blocking collection
    [InlineData(400, 100, 0, -1, true)]     // 300 MiB reclaimable and idle
    public void Trims_only_a_quiet_node_holding_much_more_than_is_live_and_not_too_often(long committed, long live, long allocated,
        int minutesSince, bool trim)
    {
        TimeSpan? since = minutesSince < 0 ? null : TimeSpan.FromMinutes(minutesSince);
        Assert.Equal(trim, Policy.ShouldTrim(committed * MiB, live * MiB, allocated * MiB, TimeSpan.FromSeconds(60), since));
    }

    [Fact]
    public void No_time_elapsed_is_never_quiet() =>
        Assert.False(Policy.ShouldTrim(2000 * MiB, 0, 0, TimeSpan.Zero, null));
}
