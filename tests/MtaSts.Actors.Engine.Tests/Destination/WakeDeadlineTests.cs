using MtaSts.Actors.Engine.Destination;
using Xunit;

namespace MtaSts.Actors.Engine.Tests.Destination;

public sealed class WakeDeadlineTests
{
    private static TimeSpan S(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void The_first_wake_arms_the_timer()
    {
        Assert.True(new WakeDeadline().Arm(S(10), S(60)));
    }

    [Fact]
    public void The_same_deadline_asked_again_later_does_not_re_arm()
    {
        var w = new WakeDeadline();
        Assert.True(w.Arm(S(10), S(60)));          // due at 70 s
        Assert.False(w.Arm(S(25), S(45)));         // a message arrived, still due at 70 s
        Assert.False(w.Arm(S(40.005), S(29.99)));  // within the tolerance
    }

    [Fact]
    public void An_earlier_or_a_later_deadline_re_arms()
    {
        var w = new WakeDeadline();
        Assert.True(w.Arm(S(10), S(60)));   // 70 s
        Assert.True(w.Arm(S(11), S(5)));    // 16 s: something is due sooner
        Assert.True(w.Arm(S(12), S(58)));   // 70 s again: the planner's latest answer wins
        Assert.False(w.Arm(S(13), S(57)));
    }

    [Fact]
    public void After_the_timer_fired_the_same_deadline_arms_again()
    {
        var w = new WakeDeadline();
        Assert.True(w.Arm(S(10), S(0)));
        w.Fired();
        Assert.True(w.Arm(S(10), S(0)));
    }
}
