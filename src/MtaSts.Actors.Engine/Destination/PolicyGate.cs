using Akka.Actor;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Policy;
using MtaSts.Actors.Policy.Resolution;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>A destination's MTA-STS readiness (RFC 8461 §5): whether delivery may go now, asking the policy branch
/// when the last answer is too old. The answer comes back to the destination as <see cref="PolicyResolved"/>.</summary>
public sealed class PolicyGate(DestinationDomain domain)
{
    private PolicyState _state = PolicyState.None;

    /// <summary>The policy connections are opened with (null: none known).</summary>
    public PolicyResolution? Resolution => _state.Resolution;

    public void Answered(PolicyResolved p, DateTimeOffset now) => _state = _state.Answered(p.Resolution, p.Failed, now);

    /// <summary>True when delivery may go; asks the resolver (at most one question at a time) when due. A profile
    /// without MTA-STS, a fixed SMTP route or a gateway without a policy branch never waits.</summary>
    public bool Ready(DestinationProfile profile, Func<IActorRef?> resolver, DateTimeOffset now, TimeSpan reuse, TimeSpan timeout, IActorRef self)
    {
        if (!profile.MtaSts || profile.HasSmtpRoute || resolver() is not { } policyActor) return true;
        var (ready, ask) = _state.Readiness(now, reuse);
        if (!ask) return ready;
        _state = _state with { Pending = true };
        policyActor.Ask<PolicyResolved>(new ResolvePolicy(domain), timeout)
            .PipeTo(self, failure: ex => new PolicyResolved(domain, null, $"policy resolution timed out: {ex.Message}"));
        return ready;
    }
}
