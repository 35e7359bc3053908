namespace MtaSts.Actors.DestinationControls;

/// <summary>"Time in queue" delay DSNs (RFC 3464 Action: delayed): the first after <paramref name="Interval"/> in
/// the queue, then every <paramref name="Interval"/>, at most <paramref name="MaxCount"/> of them.</summary>
public sealed record DelayWarning(TimeSpan Interval, int MaxCount = 1)
{
    public static readonly TimeSpan MinInterval = TimeSpan.FromMinutes(1), MaxIntervalLimit = TimeSpan.FromDays(30);
    public const int MinCount = 1, MaxCountLimit = 100;

    /// <summary>How many delay DSNs a message queued for <paramref name="inQueue"/> should have had by now.</summary>
    public int DueCount(TimeSpan inQueue) =>
        inQueue <= TimeSpan.Zero ? 0 : (int)Math.Min(MaxCount, Math.Floor(inQueue / Interval));
}

/// <summary>
/// Retry and bounce behaviour (vendor <c>bounceconfig</c>, research §1.4). Initialisers are the vendor defaults.
/// </summary>
public sealed record BounceProfile
{
    public const string DefaultName = "default";
    public const int MinRetries = 0, MaxRetriesLimit = 10_000;
    public static readonly TimeSpan MinTimeInQueue = TimeSpan.FromSeconds(1), MaxTimeInQueueLimit = TimeSpan.FromDays(30);
    public static readonly TimeSpan MinRetryInterval = TimeSpan.FromSeconds(1), MaxRetryIntervalLimit = TimeSpan.FromDays(1);
    public const double MaxJitter = 0.5;

    public static BounceProfile Default { get; } = new();

    public string Name { get; init; } = DefaultName;

    /// <summary>Soft-bounce retries before the recipient is hard-bounced (100). 0 = bounce on the first 4xx.</summary>
    public int MaxRetries { get; init; } = 100;

    /// <summary>Time since the message was accepted after which it is hard-bounced, checked when an attempt is due (72 h).</summary>
    public TimeSpan MaxTimeInQueue { get; init; } = TimeSpan.FromHours(72);

    /// <summary>Wait after the first failed attempt (60 s).</summary>
    public TimeSpan InitialRetryInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Upper bound of the growing interval (3600 s); RFC 5321 §4.5.4.1 wants retries ≥ 30 min apart in the long run.</summary>
    public TimeSpan MaxRetryInterval { get; init; } = TimeSpan.FromSeconds(3600);

    /// <summary>Not a vendor setting: ± fraction applied to each interval so that a domain's retries do not all land on the
    /// same second (research §5.16). 0 reproduces the vendor's exact schedule.</summary>
    public double RetryJitter { get; init; } = 0.1;

    /// <summary>Send a failure DSN on hard bounce (vendor "send hard bounce messages", yes).</summary>
    public bool SendDsn { get; init; } = true;

    /// <summary><c>null</c> = no delay warnings (vendor default off).</summary>
    public DelayWarning? DelayWarning { get; init; }
}
