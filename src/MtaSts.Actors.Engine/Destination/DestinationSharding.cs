using Akka.Cluster.Sharding;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>
/// Routes destination commands by domain: entity id = the destination domain, on one node or in a cluster — one
/// owner per domain for the whole cluster, so a destination's limits, MTA-STS state and retry queue are counted once.
/// In a cluster the owner loads the domain's queue from the cluster spool (PostgreSQL), wherever the mail was
/// accepted; shards move between nodes with the default allocation strategy (least shards, rebalancing).
/// The shard count must never change on a live cluster (it is part of every shard id).
/// </summary>
public sealed class DestinationMessageExtractor : IMessageExtractor
{
    public const int ShardCount = 100;

    public string? EntityId(object message) => message is IWithDestination d ? d.Domain.Name : null;

    public object? EntityMessage(object message) => message;

    public string? ShardId(object message) => EntityId(message) is { } id ? ShardOf(id) : null;

    public string ShardId(string entityId, object? messageHint = null) => ShardOf(entityId);

    public static DestinationDomain DomainOf(string entityId) => DestinationDomain.Parse(entityId);

    private static string ShardOf(string entityId) =>
        ((uint)StableHash(entityId) % ShardCount).ToString(System.Globalization.CultureInfo.InvariantCulture);

    // string.GetHashCode is randomized per process: shard ids must be the same on every node and after restarts.
    private static int StableHash(string s)
    {
        unchecked
        {
            var h = (int)2166136261;
            foreach (var c in s) h = (h ^ c) * 16777619;
            return h;
        }
    }
}

public static class EngineNames
{
    public const string DestinationRegion = "destination";
    public const string Role = "delivery";
}
