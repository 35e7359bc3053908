using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>What all sessions of one listener share: the DATA byte budget, the per-client limiter, the AUTH throttle
/// and the admission gate's log limiter.</summary>
internal sealed record IntakeShared(DataBudget Budget, ClientLimiter Limiter, AuthThrottle Auth)
{
    public AdmissionLog AdmissionLog { get; } = new();
}

/// <summary>Refusals by the admission gate (<see cref="SmtpListenerOptions.Admission"/>) are logged at warning level
/// the first time for a reason and then at most once per interval per reason, with the count of refusals logged at
/// debug level in between: a node out of its cluster with clients retrying every second must not flood the log.</summary>
internal sealed class AdmissionLog
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);
    private readonly object _lock = new();
    private string? _reason;
    private long _lastLoggedTicks;
    private int _suppressed;

    /// <summary>True when this refusal is logged at warning level; <paramref name="suppressed"/> = refusals since the
    /// last such line.</summary>
    public bool ShouldWarn(string reason, long nowTicks, out int suppressed)
    {
        lock (_lock)
        {
            if (reason != _reason || nowTicks - _lastLoggedTicks >= Interval.Ticks)
            {
                _reason = reason;
                _lastLoggedTicks = nowTicks;
                suppressed = _suppressed;
                _suppressed = 0;
                return true;
            }
            _suppressed++;
            suppressed = 0;
            return false;
        }
    }
}

/// <summary>A new connection's fate, decided at accept: admitted with its client limits and lease, or refused with
/// the reply to send (and whether to log the refusal: once per client per minute).
/// <see cref="Gate"/>: refused by the admission gate (logged through <see cref="AdmissionLog"/>).</summary>
internal readonly record struct SessionAdmission(SessionLease? Lease, ClientLimits? Limits, string? Refusal, string? Reason, bool LogRefusal, bool Gate = false)
{
    public static SessionAdmission Admitted(SessionLease lease, ClientLimits limits) => new(lease, limits, null, null, false);
    public static SessionAdmission Refused(string reply, string reason, bool log, bool gate = false) => new(null, null, reply, reason, log, gate);
}
