namespace MtaSts.Actors.Engine.Destination;

/// <summary>
/// When a destination's "wake" timer is armed (monotonic time). Re-arming a timer for the same deadline is not free:
/// Akka's wheel scheduler keeps a cancelled registration (≈ 230 bytes with its cancellation source) until its original
/// deadline passes, so a down destination that re-plans on every arriving message (each one deferred for the same
/// retry time) left one dead registration per message for a whole retry interval (66,000 in a 200,000-message backlog,
/// ≈ 15 MB). The planner's latest answer still wins: a deadline that moved by more than <see cref="Tolerance"/>, either
/// way, re-arms.
/// </summary>
public sealed class WakeDeadline
{
    /// <summary>Deadlines this close are the same (the planner's delays are computed from a clock read at each call).</summary>
    public static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(20);

    private TimeSpan? _armedAt;

    /// <summary>True when the timer must be (re)armed for <paramref name="delay"/> from <paramref name="now"/>; the
    /// deadline is then remembered.</summary>
    public bool Arm(TimeSpan now, TimeSpan delay)
    {
        var at = now + delay;
        if (_armedAt is { } armed && (at - armed).Duration() <= Tolerance) return false;
        _armedAt = at;
        return true;
    }

    /// <summary>The timer fired (or was cancelled): the next wake arms it again.</summary>
    public void Fired() => _armedAt = null;
}
