using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>
/// Routes destination commands by domain. In a cluster every node's mail has its own destination entities, pinned to
/// that node: the spool (bodies, done records) and the pending index are node-local, so the entity that delivers a
/// message must live where the message is stored. Entity id = <c>domain@node</c>, shard id = <c>node:n</c>, and
/// <see cref="NodePinnedAllocation"/> gives each shard to the region that asked for it (always the owning node,
/// because only it dispatches its mail). Single node: the node tag is empty and ids are just the domain.
/// The shard count must never change on a live cluster.
/// </summary>
public sealed class DestinationMessageExtractor(string nodeTag = "") : IMessageExtractor
{
    public const int ShardCount = 100; // per node

    public string NodeTag { get; } = nodeTag;

    public string? EntityId(object message) => message is IWithDestination d ? EntityIdOf(d.Domain, NodeTag) : null;

    public object? EntityMessage(object message) => message;

    public string? ShardId(object message) => EntityId(message) is { } id ? ShardOf(id) : null;

    public string ShardId(string entityId, object? messageHint = null) => ShardOf(entityId);

    public static string EntityIdOf(DestinationDomain domain, string nodeTag) => nodeTag.Length == 0 ? domain.Name : domain.Name + "@" + nodeTag;

    /// <summary>The domain part of an entity id (domains never contain '@').</summary>
    public static DestinationDomain DomainOf(string entityId) =>
        DestinationDomain.Parse(entityId.IndexOf('@') is var at and >= 0 ? entityId[..at] : entityId);

    private static string ShardOf(string entityId)
    {
        var at = entityId.IndexOf('@');
        var domain = at >= 0 ? entityId[..at] : entityId;
        var bucket = (int)((uint)StableHash(domain) % ShardCount);
        return at >= 0 ? $"{entityId[(at + 1)..]}:{bucket}" : bucket.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

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

/// <summary>Allocates a shard to the region that requested it and never rebalances (see the extractor).</summary>
public sealed class NodePinnedAllocation : IShardAllocationStrategy
{
    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId,
        IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations) => Task.FromResult(requester);

    public Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations,
        IImmutableSet<string> rebalanceInProgress) => Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);
}

public static class EngineNames
{
    public const string DestinationRegion = "destination";
    public const string Role = "delivery";
}
