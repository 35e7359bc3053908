using Akka.Cluster.Sharding;
using MtaSts.Actors.Engine.Protocol;

namespace MtaSts.Actors.Engine.Sharding;

/// <summary>Routes destination commands by domain. The shard count must never change on a live cluster.</summary>
public sealed class DestinationMessageExtractor() : HashCodeMessageExtractor(ShardCount)
{
    public const int ShardCount = 100; // ~10 × the largest expected cluster

    public override string? EntityId(object message) => message is IWithDestination d ? d.Domain : null;
}

public static class EngineNames
{
    public const string DestinationRegion = "destination";
    public const string Role = "delivery";
}
