namespace MtaSts.Actors.Smtp.Intake.Limits;

/// <summary>Settings of <see cref="AuthThrottle"/> (SMTP AUTH brute-force protection). Counts: 0 = no lockout for that scope.</summary>
public sealed record AuthThrottleOptions
{
    /// <summary>Longest delay accepted: RFC 5321 §4.5.3.2 clients wait 5 minutes for a reply.</summary>
    public static readonly TimeSpan MaxAllowedDelay = TimeSpan.FromMinutes(5);

    /// <summary>Delay before the reply to an address's first failure in a window; doubles with each further one; HOCON auth-base-delay.</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Ceiling of the doubling delay; HOCON auth-max-delay.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>Failures from one address (IPv6: /64) within <see cref="FailureWindow"/> that lock it out; HOCON auth-max-failures-per-address.</summary>
    public int MaxFailuresPerAddress { get; init; } = 10;

    /// <summary>Failures for one user name, from any address, within <see cref="FailureWindow"/> that lock the name out; HOCON auth-max-failures-per-user.</summary>
    public int MaxFailuresPerUser { get; init; } = 10;

    /// <summary>Fixed window, opened by the first failure, in which failures are counted; HOCON auth-failure-window.</summary>
    public TimeSpan FailureWindow { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>How long a lockout lasts (attempts during it do not extend it); HOCON auth-lockout-duration.</summary>
    public TimeSpan LockoutDuration { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Throws <see cref="ArgumentException"/> naming the HOCON setting when a value is out of range.</summary>
    public void Validate()
    {
        if (BaseDelay < TimeSpan.Zero || BaseDelay > MaxAllowedDelay)
            throw new ArgumentException($"auth-base-delay must be between 0 and {MaxAllowedDelay.TotalMinutes:0} minutes, got {BaseDelay}", nameof(BaseDelay));
        if (MaxDelay < BaseDelay || MaxDelay > MaxAllowedDelay)
            throw new ArgumentException($"auth-max-delay must be between auth-base-delay ({BaseDelay}) and {MaxAllowedDelay.TotalMinutes:0} minutes (clients time out after that), got {MaxDelay}", nameof(MaxDelay));
        if (MaxFailuresPerAddress < 0)
            throw new ArgumentException($"auth-max-failures-per-address must be 0 (no lockout) or positive, got {MaxFailuresPerAddress}", nameof(MaxFailuresPerAddress));
        if (MaxFailuresPerUser < 0)
            throw new ArgumentException($"auth-max-failures-per-user must be 0 (no lockout) or positive, got {MaxFailuresPerUser}", nameof(MaxFailuresPerUser));
        if (FailureWindow <= TimeSpan.Zero)
            throw new ArgumentException($"auth-failure-window must be positive, got {FailureWindow}", nameof(FailureWindow));
        if (LockoutDuration <= TimeSpan.Zero)
            throw new ArgumentException($"auth-lockout-duration must be positive, got {LockoutDuration}", nameof(LockoutDuration));
    }
}
