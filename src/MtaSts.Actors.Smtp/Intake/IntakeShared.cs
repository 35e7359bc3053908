using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>What all sessions of one listener share: the DATA byte budget, the per-client limiter and the AUTH throttle.</summary>
internal sealed record IntakeShared(DataBudget Budget, ClientLimiter Limiter, AuthThrottle Auth);

/// <summary>A new connection's fate, decided at accept: admitted with its client limits and lease, or refused with
/// the reply to send (and whether to log the refusal: once per client per minute).</summary>
internal readonly record struct SessionAdmission(SessionLease? Lease, ClientLimits? Limits, string? Refusal, string? Reason, bool LogRefusal)
{
    public static SessionAdmission Admitted(SessionLease lease, ClientLimits limits) => new(lease, limits, null, null, false);
    public static SessionAdmission Refused(string reply, string reason, bool log) => new(null, null, reply, reason, log);
}
