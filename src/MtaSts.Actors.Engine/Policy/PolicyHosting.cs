using Akka.Actor;
using Akka.Hosting;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy.Resolution;

namespace MtaSts.Actors.Engine.Policy;

/// <summary>Marker for the policy supervisor in the registry.</summary>
public sealed class PolicyBranch;

public static class PolicyHosting
{
    /// <summary>The policy branch: <see cref="PolicyActor"/> under its own supervisor at <c>/user/policy</c>
    /// (<see cref="PolicySupervision"/>), registered as <see cref="PolicyBranch"/>; <paramref name="started"/> gets it
    /// for the destinations that ask it.</summary>
    /// <param name="options">Per-fetch options from the live configuration (a proxy change applies without a restart).</param>
    public static AkkaConfigurationBuilder AddPolicyBranch(this AkkaConfigurationBuilder builder, PolicyResolver resolver,
        Func<string, PolicyResolveOptions> options, MailLog log, Action<IActorRef>? started = null) =>
        builder.WithActors((system, registry) =>
        {
            var supervisor = system.ActorOf(PolicySupervision.Props(PolicyActor.Props(resolver, options, log)), "policy");
            registry.Register<PolicyBranch>(supervisor);
            started?.Invoke(supervisor);
        });
}
