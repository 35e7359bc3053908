using System.Collections.Concurrent;
using System.Diagnostics;
using MtaSts.Actors.Host.Cli;
using Xunit.Abstractions;

namespace MtaSts.Actors.Host.Tests.Cluster;

/// <summary>
/// Fail-safe membership with real processes: 2 nodes, static seed nodes, mtasts.cluster.split-brain = keep-oldest
/// (down-if-alone). A node that loses its cluster refuses mail and exits 4; the node that stays keeps delivering.
/// </summary>
public sealed class ClusterFailSafeTests(ITestOutputHelper output)
{
    private const int SigKill = 9, SigCont = 18, SigStop = 19;

    private static async Task<(ClusterNode Oldest, ClusterNode Youngest)> TwoNodesAsync(ClusterTestBed bed)
    {
        var nodes = bed.AddNodes(2);
        var seeds = $"akka.cluster.seed-nodes = [{string.Join(", ", nodes.Select(n => $"\"{n.SeedNode}\""))}]";
        const string cluster = "formation = seed-nodes\nsplit-brain = keep-oldest";
        // The first seed forms the cluster: started first, it is the oldest member.
        bed.Start(nodes[0], cluster, seeds);
        await ClusterTestBed.UntilAcceptedAsync(nodes[0], "warmup-a@one.test", ClusterTestBed.Generous);
        bed.Start(nodes[1], cluster, seeds);
        await ClusterTestBed.UntilAcceptedAsync(nodes[1], "warmup-b@one.test", ClusterTestBed.Generous);
        return (nodes[0], nodes[1]);
    }

    [Fact]
    public async Task Two_nodes_keep_oldest_SIGKILL_of_the_younger_node_leaves_the_oldest_delivering()
    {
        await using var bed = new ClusterTestBed();
        var (oldest, youngest) = await TwoNodesAsync(bed);

        youngest.Process!.Signal(SigKill);
        var killed = Stopwatch.StartNew();
        // While the younger node is unreachable the oldest cannot know whether it is the side that goes: 421 …
        var refused = await UntilRefusedAsync(oldest, "unreachable@two.test");
        // … until the resolver has downed the younger node.
        var accepted = refused + await ClusterTestBed.UntilAcceptedAsync(oldest, "after-kill@two.test", ClusterTestBed.Generous);
        output.WriteLine($"oldest refuses {refused.TotalSeconds:0.0} s and accepts again {accepted.TotalSeconds:0.0} s after the younger node was killed");

        Assert.True(await bed.DeliveredAsync("after-kill@two.test", ClusterTestBed.Generous), bed.Describe());
        Assert.False(oldest.Process!.HasExited, bed.Describe());
        Assert.True(killed.Elapsed < TimeSpan.FromSeconds(30), $"{killed.Elapsed}");
    }

    [Fact]
    public async Task Two_nodes_keep_oldest_SIGKILL_of_the_oldest_node_makes_the_younger_refuse_and_exit_4_never_a_zombie()
    {
        await using var bed = new ClusterTestBed();
        var (oldest, youngest) = await TwoNodesAsync(bed);

        oldest.Process!.Signal(SigKill);
        var killed = Stopwatch.StartNew();
        // keep-oldest with 2 nodes keeps the oldest side: the younger node downs itself (a crash of the other node and
        // a partition look alike from here). It must not go on taking mail it has no cluster to deliver with.
        var probes = await ProbeUntilExitAsync(youngest, "younger@three.test", TimeSpan.FromSeconds(45));
        var exit = await youngest.Process!.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.True(exit == GatewayCli.ExitActorSystemTerminated, $"exit {exit}\n{bed.Describe()}");
        var firstRefusal = probes.FirstOrDefault(p => p.Code == 421);
        Assert.True(firstRefusal is not null, string.Join("\n", probes));
        Assert.DoesNotContain(probes, p => p.Code == 250 && p.Start > firstRefusal!.Start); // once closed, never open again
        output.WriteLine($"younger node refuses {firstRefusal!.Start.TotalSeconds:0.0} s after the oldest was killed " +
                         $"({firstRefusal.Line}); exited {exit} after {killed.Elapsed.TotalSeconds:0.0} s");
        Assert.Contains("Critical: Actor system terminated (this node was downed or left its cluster)", youngest.Log());
    }

    [Fact]
    public async Task A_node_downed_while_SIGSTOPped_refuses_mail_after_SIGCONT_and_exits_4_while_the_other_keeps_delivering()
    {
        await using var bed = new ClusterTestBed();
        var (oldest, youngest) = await TwoNodesAsync(bed);

        var run = await StopPastTheResolverAsync(oldest, youngest, "four.test");

        output.WriteLine($"oldest accepts again {run.Back.TotalSeconds:0.0} s after SIGSTOP; SIGCONT at {run.ResumedAt.TotalSeconds:0.0} s");
        Assert.True(run.Exit == GatewayCli.ExitActorSystemTerminated, $"exit {run.Exit}\n{bed.Describe()}");
        // Answers read after SIGCONT (also those to connections made while it was stopped): never a 250.
        Assert.True(!run.AfterResume.Any(p => p.Code == 250), string.Join("\n", run.AfterResume) + "\n" + bed.Describe());
        var firstRefusal = run.AfterResume.FirstOrDefault(p => p.Code == 421);
        Assert.True(firstRefusal is not null, string.Join("\n", run.Probes) + "\n" + bed.Describe());
        output.WriteLine($"after SIGCONT: first 421 {(firstRefusal!.End - run.ResumedAt).TotalSeconds:0.00} s later ({firstRefusal.Line}); " +
                         $"exit {run.Exit} {(run.Ended - run.ResumedAt).TotalSeconds:0.0} s later; {run.AfterResume.Length} probes answered after SIGCONT");
        Assert.True(await bed.DeliveredAsync("during-stop@four.test", ClusterTestBed.Generous), bed.Describe());
        Assert.False(oldest.Process!.HasExited, bed.Describe());
        Assert.Equal(250, (await ClusterTestBed.SendAsync(oldest.SmtpPort, "after@four.test")).Code);
    }

    [Fact]
    public async Task A_node_paused_briefly_and_not_downed_accepts_again_once_the_other_member_has_answered_it()
    {
        await using var bed = new ClusterTestBed();
        var (oldest, youngest) = await TwoNodesAsync(bed);

        // Longer than the failure detector tolerates (2 s), shorter than it takes the resolver to decide (+3 s).
        youngest.Process!.Signal(SigStop);
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        youngest.Process.Signal(SigCont);
        var resumed = Stopwatch.StartNew();
        var refused = await ClusterTestBed.SendAsync(youngest.SmtpPort, "paused@five.test");
        var back = await ClusterTestBed.UntilAcceptedAsync(youngest, "resumed@five.test", ClusterTestBed.Generous);

        output.WriteLine($"first answer after SIGCONT: {refused.Line}; accepts again {back.TotalSeconds:0.0} s after SIGCONT");
        Assert.True(refused.Code == 421, refused.Line);
        Assert.True(await bed.DeliveredAsync("resumed@five.test", ClusterTestBed.Generous), bed.Describe());
        Assert.False(youngest.Process.HasExited, bed.Describe());
        Assert.Contains("answered this node: SMTP intake open again", youngest.Log());
    }

    [Fact]
    public async Task Three_bootstrap_nodes_keep_majority_a_node_SIGSTOPped_past_the_resolver_never_answers_250_after_SIGCONT_and_exits_4()
    {
        await using var bed = new ClusterTestBed();
        var nodes = bed.AddNodes(3);
        var contactPoints = string.Join(", ", nodes.Select(n => $"\"{n.ContactPoint}\""));
        foreach (var n in nodes)
            bed.Start(n, $$"""
                formation = bootstrap
                split-brain = keep-majority
                bootstrap { contact-points = [{{contactPoints}}], required-contact-point-nr = 2, management-port = {{n.ManagementPort}} }
                """);
        foreach (var n in nodes) await ClusterTestBed.UntilAcceptedAsync(n, $"warmup-{n.Name}@six.test", ClusterTestBed.Generous);
        var run = await StopPastTheResolverAsync(nodes[0], nodes[2], "six.test");

        Assert.True(run.Exit == GatewayCli.ExitActorSystemTerminated, $"exit {run.Exit}\n{bed.Describe()}");
        Assert.True(!run.AfterResume.Any(p => p.Code == 250), string.Join("\n", run.AfterResume) + "\n" + bed.Describe());
        Assert.Contains(run.AfterResume, p => p.Code == 421);
        Assert.True(await bed.DeliveredAsync("during-stop@six.test", ClusterTestBed.Generous), bed.Describe());
        Assert.Equal(250, (await ClusterTestBed.SendAsync(nodes[1].SmtpPort, "after@six.test")).Code);
        output.WriteLine($"majority refuses {run.Refused.TotalSeconds:0.0} s and accepts again {run.Back.TotalSeconds:0.0} s after SIGSTOP; " +
                         $"stopped node: exit {run.Exit} {(run.Ended - run.ResumedAt).TotalSeconds:0.0} s after SIGCONT, {run.AfterResume.Length} probes answered after SIGCONT, none 250");
    }

    private sealed record StopRun(TimeSpan Refused, TimeSpan Back, TimeSpan ResumedAt, TimeSpan Ended, List<Probe> Probes, int? Exit)
    {
        /// <summary>Answers read after SIGCONT (also those to connections made while the node was stopped).</summary>
        public Probe[] AfterResume => Probes.Where(p => p.End > ResumedAt).ToArray();
    }

    /// <summary>SIGSTOPs <paramref name="stopped"/> while probing it without pause; <paramref name="survivor"/> refuses
    /// while it is unreachable, downs it (failure detector 2 s, stable-after 3 s) and accepts <c>during-stop@domain</c>
    /// again; 2 s later SIGCONT, then the stopped node's exit. Times are from just before the SIGSTOP.</summary>
    private static async Task<StopRun> StopPastTheResolverAsync(ClusterNode survivor, ClusterNode stopped, string domain)
    {
        var clock = Stopwatch.StartNew();
        var probing = ProbeUntilExitAsync(stopped, $"stopped@{domain}", TimeSpan.FromSeconds(55));
        stopped.Process!.Signal(SigStop);
        var refused = await UntilRefusedAsync(survivor, $"unreachable@{domain}");
        var back = refused + await ClusterTestBed.UntilAcceptedAsync(survivor, $"during-stop@{domain}", ClusterTestBed.Generous);
        await Task.Delay(TimeSpan.FromSeconds(2));
        var resumedAt = clock.Elapsed;
        stopped.Process.Signal(SigCont);
        var probes = await probing;
        var exit = await stopped.Process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        return new StopRun(refused, back, resumedAt, clock.Elapsed, probes, exit);
    }

    /// <summary>Sends until the node answers 421 (it sees its cluster change); how long that took. A probe starts every
    /// 100 ms whether or not the previous ones have answered (at most 20 in flight): the refusal lasts only until the
    /// resolver downs the unreachable node (≈ 4 s on a quiet machine), and one probe held in a slow transaction across
    /// that window must not hide it (seen once on a loaded CI machine: "never refused").</summary>
    private static async Task<TimeSpan> UntilRefusedAsync(ClusterNode node, string to)
    {
        var sw = Stopwatch.StartNew();
        var inFlight = new List<Task<(int? Code, string Line)>>();
        var answers = new List<string>();
        while (sw.Elapsed < ClusterTestBed.Generous)
        {
            foreach (var done in inFlight.Where(t => t.IsCompleted).ToArray())
            {
                var (code, line) = await done;
                if (code == 421) return sw.Elapsed;
                answers.Add($"{sw.Elapsed.TotalSeconds:0.0}s {line}");
                inFlight.Remove(done);
            }
            if (inFlight.Count < 20) inFlight.Add(ClusterTestBed.SendAsync(node.SmtpPort, to));
            await Task.Delay(100);
        }
        throw new TimeoutException($"{node.Name} never refused; last answers:\n{string.Join("\n", answers.TakeLast(10))}\n{node}");
    }

    private sealed record Probe(TimeSpan Start, TimeSpan End, int? Code, string Line)
    {
        public override string ToString() => $"{Start.TotalSeconds:0.00}-{End.TotalSeconds:0.00} s: {Line}";
    }

    /// <summary>Sends messages to <paramref name="node"/> back to back (several in flight, so that some wait in the
    /// kernel's accept queue while the process is stopped) until it has exited or the time is up.</summary>
    private static async Task<List<Probe>> ProbeUntilExitAsync(ClusterNode node, string to, TimeSpan within)
    {
        var clock = Stopwatch.StartNew();
        var results = new ConcurrentBag<Probe>();
        async Task Loop()
        {
            while (clock.Elapsed < within && !node.Process!.HasExited)
            {
                var start = clock.Elapsed;
                var (code, line) = await ClusterTestBed.SendAsync(node.SmtpPort, to, TimeSpan.FromSeconds(30));
                results.Add(new Probe(start, clock.Elapsed, code, line));
                await Task.Delay(code is null ? 50 : 20);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Loop()));
        return results.OrderBy(p => p.Start).ToList();
    }
}
