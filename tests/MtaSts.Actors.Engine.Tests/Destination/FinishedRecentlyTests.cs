using MtaSts.Actors.Engine.Destination;
using Xunit;

namespace MtaSts.Actors.Engine.Tests.Destination;

public class FinishedRecentlyTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_finished_recipient_is_known_until_the_window_has_passed()
    {
        var f = new FinishedRecently(TimeSpan.FromMinutes(5), 100);
        f.Finished(7, [0, 2], T0);
        Assert.True(f.Contains(7, 0, T0.AddSeconds(10)));   // a late enqueue of a delivered recipient
        Assert.True(f.Contains(7, 2, T0.AddMinutes(5)));
        Assert.False(f.Contains(7, 1, T0.AddSeconds(10)));  // never finished: a real enqueue
        Assert.False(f.Contains(8, 0, T0.AddSeconds(10)));
        Assert.False(f.Contains(7, 0, T0.AddMinutes(5).AddSeconds(1)));
        Assert.Equal(0, f.Count);
    }

    [Fact]
    public void The_oldest_are_forgotten_beyond_the_capacity()
    {
        var f = new FinishedRecently(TimeSpan.FromMinutes(5), 3);
        for (var mid = 1; mid <= 5; mid++) f.Finished(mid, [0], T0.AddSeconds(mid));
        Assert.Equal(3, f.Count);
        Assert.False(f.Contains(1, 0, T0.AddSeconds(6)));
        Assert.False(f.Contains(2, 0, T0.AddSeconds(6)));
        Assert.True(f.Contains(3, 0, T0.AddSeconds(6)));
        Assert.True(f.Contains(5, 0, T0.AddSeconds(6)));
    }

    [Fact]
    public void Finishing_the_same_recipient_twice_keeps_one_entry()
    {
        var f = new FinishedRecently(TimeSpan.FromMinutes(5), 10);
        f.Finished(7, [0], T0);
        f.Finished(7, [0], T0.AddSeconds(1));
        Assert.Equal(1, f.Count);
    }
}
