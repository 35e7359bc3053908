namespace MtaSts.Actors.Smtp.Intake.Limits;

/// <summary>
/// Per-client limits of the inbound listener, after Postfix smtpd + anvil(8). <see cref="ClientLimiter"/> enforces the
/// session cap and the two rates; the session enforces the rest (they are carried here so one record describes a
/// client class). Counts: 0 = unlimited. Pick <see cref="Default"/> for ordinary clients and <see cref="RelayDefault"/>
/// for relay networks (Postfix exempts $mynetworks via smtpd_client_event_limit_exceptions).
/// </summary>
public sealed record ClientLimits
{
    /// <summary>Longest <see cref="ErrorDelay"/> accepted: RFC 5321 §4.5.3.2 clients wait 5 minutes for a reply.</summary>
    public static readonly TimeSpan MaxErrorDelay = TimeSpan.FromMinutes(5);

    /// <summary>Ordinary clients: 20 sessions, 120 connections/min, 600 messages/min, 10 min, 100 junk commands, 3 errors then 1 s.</summary>
    public static ClientLimits Default { get; } = new();

    /// <summary>Relay networks (trusted MTAs and applications): 1000 sessions, no rate limits, 1 h, 1000 junk commands, 10 errors then 1 s.</summary>
    public static ClientLimits RelayDefault { get; } = new()
    {
        MaxSessions = 1000,
        ConnectionsPerMinute = 0,
        MessagesPerMinute = 0,
        MaxSessionDuration = TimeSpan.FromHours(1),
        MaxNonTransactionCommands = 1000,
        SoftErrorLimit = 10,
    };

    /// <summary>Concurrent sessions per client (<see cref="ClientKey"/>); HOCON max-sessions-per-client; Postfix smtpd_client_connection_count_limit.</summary>
    public int MaxSessions { get; init; } = 20;

    /// <summary>Admitted connections per client per minute; HOCON connections-per-minute; Postfix smtpd_client_connection_rate_limit.</summary>
    public int ConnectionsPerMinute { get; init; } = 120;

    /// <summary>MAIL FROM commands per client per minute; HOCON messages-per-minute; Postfix smtpd_client_message_rate_limit.</summary>
    public int MessagesPerMinute { get; init; } = 600;

    /// <summary>Longest a session may last, whatever it does (the session enforces); HOCON max-session-duration.</summary>
    public TimeSpan MaxSessionDuration { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>NOOP/RSET/VRFY/HELP per session, reset after each accepted message (the session enforces); HOCON max-non-transaction-commands; Postfix smtpd_junk_command_limit.</summary>
    public int MaxNonTransactionCommands { get; init; } = 100;

    /// <summary>Errors a session may make before every error reply is delayed by <see cref="ErrorDelay"/> (the session enforces); HOCON soft-error-limit; Postfix smtpd_soft_error_limit.</summary>
    public int SoftErrorLimit { get; init; } = 3;

    /// <summary>Tarpit delay of each error reply past <see cref="SoftErrorLimit"/>; HOCON error-delay; Postfix smtpd_error_sleep_time.</summary>
    public TimeSpan ErrorDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The delay before the reply to a session's <paramref name="errors"/>-th error (this one included): <see cref="ErrorDelay"/> once errors &gt; <see cref="SoftErrorLimit"/> (as in Postfix ≥ 2.1), else zero.</summary>
    public TimeSpan ErrorReplyDelay(int errors) => SoftErrorLimit > 0 && errors > SoftErrorLimit ? ErrorDelay : TimeSpan.Zero;

    /// <summary>Throws <see cref="ArgumentException"/> naming the HOCON setting when a value is out of range.</summary>
    public void Validate()
    {
        NotNegative(MaxSessions, "max-sessions-per-client", nameof(MaxSessions));
        NotNegative(ConnectionsPerMinute, "connections-per-minute", nameof(ConnectionsPerMinute));
        NotNegative(MessagesPerMinute, "messages-per-minute", nameof(MessagesPerMinute));
        if (MaxSessionDuration <= TimeSpan.Zero)
            throw new ArgumentException($"max-session-duration must be positive, got {MaxSessionDuration}", nameof(MaxSessionDuration));
        NotNegative(MaxNonTransactionCommands, "max-non-transaction-commands", nameof(MaxNonTransactionCommands));
        NotNegative(SoftErrorLimit, "soft-error-limit", nameof(SoftErrorLimit));
        if (ErrorDelay < TimeSpan.Zero || ErrorDelay > MaxErrorDelay)
            throw new ArgumentException($"error-delay must be between 0 and {MaxErrorDelay.TotalMinutes:0} minutes (clients time out after that), got {ErrorDelay}", nameof(ErrorDelay));
    }

    private static void NotNegative(int value, string setting, string property)
    {
        if (value < 0) throw new ArgumentException($"{setting} must be 0 (unlimited) or positive, got {value}", property);
    }
}
