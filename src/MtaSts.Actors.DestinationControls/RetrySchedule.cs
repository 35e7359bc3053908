namespace MtaSts.Actors.DestinationControls;

/// <summary>Why a recipient stops being retried.</summary>
public enum GiveUpReason
{
    /// <summary>More soft bounces than the profile's maximum number of retries.</summary>
    RetriesExhausted,
    /// <summary>The message has been in the queue longer than the profile's maximum time in queue (RFC 3463 5.4.7).</summary>
    MaxTimeInQueueExceeded,
}

/// <summary>Outcome of a retry decision: retry at <see cref="NextAttemptAt"/>, or give up (hard bounce) now.</summary>
public readonly record struct RetryDecision(bool GiveUp, DateTimeOffset NextAttemptAt, GiveUpReason? Reason)
{
    public static RetryDecision RetryAt(DateTimeOffset at) => new(false, at, null);
    public static RetryDecision Bounce(GiveUpReason reason) => new(true, default, reason);
}

/// <summary>
/// The bounce-profile retry arithmetic (vendor <c>bounceconfig</c>, research §1.4). Pure: the clock comes in as
/// arguments and the jitter from an injected <see cref="Random"/> (the owning actor is single-threaded).
/// <list type="bullet">
/// <item>Interval after the n-th failed attempt (n ≥ 1): <c>initial × 2^(n−1)</c>, capped at the maximum interval —
/// 60, 120, 240 … 3600 s with the defaults. Doubling is what Postfix and KumoMTA do; the vendor only says the wait
/// "grows" up to the maximum.</item>
/// <item>Jitter: the interval is multiplied by a uniform factor in [1 − j, 1 + j] and then capped again, so that the
/// maximum stays a maximum (the vendor's meaning of "maximum wait") and never drops below 1 s.</item>
/// <item>Retries: attempt 1 is the first delivery, attempts 2 … MaxRetries+1 are retries. After a failure of attempt
/// MaxRetries+1 the recipient bounces at once (vendor example 1: "hard bounce right after the second retry").</item>
/// <item>Time in queue: checked when an attempt is due, not on a timer and not when scheduling (vendor example 2: max
/// time in queue 100 s → retry at 60, then a hard bounce immediately before the attempt due at 120). Measured from the
/// time the gateway accepted the message. "Exceeded" is strict: at exactly the maximum an attempt is still made.</item>
/// </list>
/// </summary>
public sealed class RetrySchedule
{
    private readonly Random _random;

    public BounceProfile Profile { get; }

    public RetrySchedule(BounceProfile profile, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(profile);
        if (profile.InitialRetryInterval <= TimeSpan.Zero) throw new ArgumentException("initial retry interval must be positive", nameof(profile));
        Profile = profile;
        _random = random ?? Random.Shared;
    }

    /// <summary>Un-jittered wait after the <paramref name="failedAttempts"/>-th failed attempt (1-based).</summary>
    public TimeSpan BaseInterval(int failedAttempts)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(failedAttempts, 1);
        var initial = Profile.InitialRetryInterval;
        var max = Profile.MaxRetryInterval < initial ? initial : Profile.MaxRetryInterval;
        var shift = failedAttempts - 1;
        // 2^shift overflows long for large attempt counts: stop doubling as soon as the cap is reached.
        if (shift >= 62 || initial.Ticks > max.Ticks >> shift) return max;
        return TimeSpan.FromTicks(initial.Ticks << shift);
    }

    /// <summary>Jittered wait after the <paramref name="failedAttempts"/>-th failed attempt.</summary>
    public TimeSpan Interval(int failedAttempts)
    {
        var baseInterval = BaseInterval(failedAttempts);
        var j = Math.Clamp(Profile.RetryJitter, 0, BounceProfile.MaxJitter);
        if (j == 0) return baseInterval;
        var factor = 1 + (_random.NextDouble() * 2 - 1) * j;
        var ticks = (long)(baseInterval.Ticks * factor);
        var max = Math.Max(Profile.MaxRetryInterval.Ticks, Profile.InitialRetryInterval.Ticks);
        return TimeSpan.FromTicks(Math.Clamp(ticks, TimeSpan.TicksPerSecond, max));
    }

    /// <summary>
    /// Called after attempt number <paramref name="failedAttempts"/> (1 = the first delivery attempt) ended in a soft
    /// bounce at <paramref name="failedAt"/>. Either the retry time or a hard bounce when no retry is left.
    /// Max time in queue is deliberately not checked here (see <see cref="CheckDue"/>).
    /// </summary>
    public RetryDecision OnTransientFailure(int failedAttempts, DateTimeOffset failedAt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(failedAttempts, 1);
        if (failedAttempts - 1 >= Profile.MaxRetries) return RetryDecision.Bounce(GiveUpReason.RetriesExhausted);
        return RetryDecision.RetryAt(failedAt + Interval(failedAttempts));
    }

    /// <summary>Called when an attempt is due at <paramref name="now"/> (first attempt or retry): <c>null</c> = go ahead,
    /// otherwise the recipient expired and must be hard-bounced instead of attempted.</summary>
    public GiveUpReason? CheckDue(DateTimeOffset acceptedAt, DateTimeOffset now) =>
        IsExpired(acceptedAt, now) ? GiveUpReason.MaxTimeInQueueExceeded : null;

    public bool IsExpired(DateTimeOffset acceptedAt, DateTimeOffset now) => now - acceptedAt > Profile.MaxTimeInQueue;

    /// <summary>The moment from which <see cref="IsExpired"/> is true (plus one tick: "exceeded" is strict).</summary>
    public DateTimeOffset ExpiresAt(DateTimeOffset acceptedAt) => acceptedAt + Profile.MaxTimeInQueue + TimeSpan.FromTicks(1);

    /// <summary>True when a delay DSN (RFC 3464 Action: delayed) is due: the (<paramref name="warningsSent"/>+1)-th
    /// warning goes once the message has waited that many intervals, up to the profile's count.</summary>
    public bool IsDelayWarningDue(DateTimeOffset acceptedAt, DateTimeOffset now, int warningsSent)
    {
        if (Profile.DelayWarning is not { } w || warningsSent >= w.MaxCount) return false;
        return now - acceptedAt >= w.Interval * (warningsSent + 1);
    }
}
