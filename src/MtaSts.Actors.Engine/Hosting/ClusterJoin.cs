using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>How this node joins its cluster at start, per <see cref="ClusterFormation.Mode"/>.</summary>
public static class ClusterJoin
{
    /// <summary>Joins the cluster once the actor system has started (a single node joins itself).</summary>
    public static AkkaConfigurationBuilder AddClusterJoin(this AkkaConfigurationBuilder builder, ClusterFormation formation, MailLog log) =>
        builder.AddStartup((system, _) => StartAsync(system, formation, log));

    public static async Task StartAsync(ActorSystem system, ClusterFormation formation, MailLog log)
    {
        switch (formation.Mode)
        {
            case ClusterFormationMode.SingleNode:
                var cluster = Cluster.Get(system);
                await cluster.JoinAsync(cluster.SelfAddress).ConfigureAwait(false);
                break;
            case ClusterFormationMode.SeedNodes:
                // Akka joins akka.cluster.seed-nodes by itself; the listener refuses mail until this node is Up.
                break;
            case ClusterFormationMode.Bootstrap:
                if (formation.Discovery == "kubernetes-api")
                    system.Settings.InjectTopLevelFallback(Akka.Discovery.KubernetesApi.KubernetesDiscovery.DefaultConfiguration());
                var contactPoint = await BootstrapContactPoint.StartAsync(system, formation, log).ConfigureAwait(false);
                // The port is released with the actor system (graceful stop, downed node, failed start alike).
                _ = system.WhenTerminated.ContinueWith(_ => contactPoint.DisposeAsync().AsTask(), TaskScheduler.Default).Unwrap();
                break;
        }
    }
}
