using Akka.Actor;
using Akka.Cluster;
using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Admin;

/// <summary>
/// <c>GET /api/cluster</c>: the cluster's members as this node knows them. Read from <c>Cluster.State</c> (this node's
/// latest gossip, a field read: nothing blocks) and from this node's own failure detector for reachability, so two
/// nodes may answer differently while the cluster converges — that is the point of asking each of them.
/// </summary>
public static class ClusterView
{
    /// <summary>The answer for <paramref name="gw"/>; <c>clustered = false</c> for a single node (formation single-node).</summary>
    public static object Of(Gateway gw)
    {
        var cluster = Cluster.Get(gw.System);
        var self = cluster.SelfMember;
        var formation = ClusterFormation.Name(gw.Configuration.Cluster.Mode);
        var intake = gw.AdmissionRefusal;
        if (!gw.IsClustered)
            return new
            {
                clustered = false,
                formation,
                self_address = cluster.SelfAddress.ToString(),
                self_status = self.Status,
                intake = intake is null ? "open" : "closed",
                intake_refusal = intake,
            };

        var state = cluster.State;
        var members = state.Members.Where(m => m.Status != MemberStatus.Removed).ToArray();
        // The oldest Up (or Leaving) member: where the singletons (the shard coordinator) run.
        var oldest = members.Where(m => m.Status is MemberStatus.Up or MemberStatus.Leaving)
            .Aggregate((Member?)null, (o, m) => o is null || m.IsOlderThan(o) ? m : o);
        var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
        return new
        {
            clustered = true,
            formation,
            self_address = cluster.SelfAddress.ToString(),
            self_status = self.Status,
            leader = state.Leader?.ToString(),
            oldest = oldest?.Address.ToString(),
            intake = intake is null ? "open" : "closed",
            intake_refusal = intake,
            members = members.Select(m => new
            {
                address = m.Address.ToString(),
                status = m.Status,
                roles = m.Roles.Order(StringComparer.Ordinal).ToArray(),
                // This node's failure detector (heartbeats it receives); itself is always reachable to itself.
                reachable = m.Address.Equals(cluster.SelfAddress) || cluster.FailureDetector.IsAvailable(m.Address),
                // The gossip's view: some member's failure detector reports it unreachable.
                reported_unreachable = unreachable.Contains(m.Address),
                self = m.Address.Equals(cluster.SelfAddress),
                leader = m.Address.Equals(state.Leader),
                oldest = oldest is not null && m.Address.Equals(oldest.Address),
            }).ToArray(),
            unreachable = unreachable.Select(a => a.ToString()).Order(StringComparer.Ordinal).ToArray(),
        };
    }
}
