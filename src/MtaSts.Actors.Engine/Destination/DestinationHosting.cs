using Akka.Cluster.Sharding;
using Akka.Hosting;
using MtaSts.Actors.Engine.Delivery;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>Marker for the destination shard region in the Akka.Hosting registry.</summary>
public sealed class DestinationRegion;

public static class DestinationHosting
{
    /// <summary>The destinations feature: sharded <see cref="DestinationActor"/>s, entity id = domain, one owner in the
    /// cluster (the node needs the <see cref="EngineNames.Role"/> role). Shards rebalance on membership changes and
    /// hand off after their transactions in flight have reported (<see cref="HandOff"/>). The region is registered as
    /// <see cref="DestinationRegion"/>.</summary>
    public static AkkaConfigurationBuilder AddDestinations(this AkkaConfigurationBuilder builder, DeliveryServices services, PendingIndex pending) =>
        builder.WithActors((system, registry) =>
        {
            var sharding = ClusterSharding.Get(system);
            var settings = ClusterShardingSettings.Create(system).WithRole(EngineNames.Role);
            var region = sharding.Start(EngineNames.DestinationRegion,
                id => DestinationActor.Props(id, services, pending),
                settings,
                new DestinationMessageExtractor(),
                new ReachableShardAllocation(sharding.DefaultShardAllocationStrategy(settings)),
                HandOff.Instance);
            registry.Register<DestinationRegion>(region);
        });
}
