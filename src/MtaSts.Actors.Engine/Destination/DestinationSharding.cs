using System.Collections.Immutable;
using Akka.Actor;
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

/// <summary>
/// The default least-shards allocation, blind to unreachable members: Akka's strategy ranks regions by member status
/// and shard count only, so a never-seen domain could be allocated to the region of a node that stopped answering
/// and wait there until the split-brain resolver removes it (25–47 s measured with 3 nodes). Allocation here
/// considers only regions on reachable members (when any is left), and rebalancing waits while one is unreachable
/// (a hand-off needs every region's answer anyway).
/// </summary>
public sealed class ReachableShardAllocation(IShardAllocationStrategy inner) : IActorSystemDependentAllocationStrategy
{
    private Akka.Cluster.Cluster? _cluster;

    public void Start(ActorSystem system)
    {
        _cluster = Akka.Cluster.Cluster.Get(system);
        switch (inner)
        {
            case IActorSystemDependentAllocationStrategy s: s.Start(system); break;
            case IStartableAllocationStrategy s: s.Start(); break;
        }
    }

    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId,
        IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
    {
        var reachable = Reachable(currentShardAllocations);
        return inner.AllocateShard(requester, shardId, reachable.Count > 0 ? reachable : currentShardAllocations);
    }

    public Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations,
        IImmutableSet<string> rebalanceInProgress) =>
        _cluster is { } c && !c.State.Unreachable.IsEmpty
            ? Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty)
            : inner.Rebalance(currentShardAllocations, rebalanceInProgress);

    private IImmutableDictionary<IActorRef, IImmutableList<string>> Reachable(IImmutableDictionary<IActorRef, IImmutableList<string>> all)
    {
        if (_cluster is not { } c || c.State.Unreachable.IsEmpty) return all;
        var unreachable = c.State.Unreachable.Select(m => m.Address).ToHashSet();
        // A local region's path has no host: it is this node's.
        return all.Where(kv => !unreachable.Contains(kv.Key.Path.Address.HasLocalScope ? c.SelfAddress : kv.Key.Path.Address))
            .ToImmutableDictionary();
    }
}
