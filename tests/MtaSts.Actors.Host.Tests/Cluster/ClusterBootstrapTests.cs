using System.Diagnostics;
using Xunit.Abstractions;

namespace MtaSts.Actors.Host.Tests.Cluster;

/// <summary>mtasts.cluster.formation = bootstrap (Akka.Management + config discovery), real processes.</summary>
public sealed class ClusterBootstrapTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_bootstrap_node_refuses_mail_until_enough_contact_points_are_up_then_any_two_of_three_form_the_cluster()
    {
        await using var bed = new ClusterTestBed();
        var nodes = bed.AddNodes(3);
        var contactPoints = string.Join(", ", nodes.Select(n => $"\"{n.ContactPoint}\""));
        string Cluster(ClusterNode n) => $$"""
            formation = bootstrap
            bootstrap { contact-points = [{{contactPoints}}], required-contact-point-nr = 2, management-port = {{n.ManagementPort}} }
            """;
        // Node a (the lowest contact point, first in the list) is never started: no node is special.
        var (b, c) = (nodes[1], nodes[2]);
        bed.Start(b, Cluster(b));

        // Alone, b is not a member: its listener answers 421 4.3.2 and readiness fails, well past the stable margin.
        var refusedSince = Stopwatch.StartNew();
        (int? Code, string Line) alone = (null, "");
        while (refusedSince.Elapsed < TimeSpan.FromSeconds(30) && alone.Code is null)
            alone = await ClusterTestBed.SendAsync(b.SmtpPort, "alone@one.test");
        Assert.True(alone.Code == 421, $"{alone.Line}\n{bed.Describe()}");
        Assert.StartsWith("421 4.3.2 nodeb.cluster.test Service not available: not an Up cluster member", alone.Line);
        await Task.Delay(TimeSpan.FromSeconds(4)); // stable-margin 1s: a lone node would have formed a cluster by now
        Assert.Equal(421, (await ClusterTestBed.SendAsync(b.SmtpPort, "alone@one.test")).Code);
        Assert.Equal(503, await ClusterTestBed.ReadyAsync(b));

        var formed = Stopwatch.StartNew();
        bed.Start(c, Cluster(c));
        var bUp = await ClusterTestBed.UntilAcceptedAsync(b, "b@two.test", ClusterTestBed.Generous);
        var cUp = await ClusterTestBed.UntilAcceptedAsync(c, "c@three.test", ClusterTestBed.Generous);
        output.WriteLine($"b accepted {bUp.TotalSeconds:0.0} s after c was started; c accepted {formed.Elapsed.TotalSeconds:0.0} s after its start");

        Assert.Equal(200, await ClusterTestBed.ReadyAsync(b));
        Assert.Equal(200, await ClusterTestBed.ReadyAsync(c));
        Assert.True(await bed.DeliveredAsync("b@two.test", ClusterTestBed.Generous), bed.Describe());
        Assert.True(await bed.DeliveredAsync("c@three.test", ClusterTestBed.Generous), bed.Describe());
        Assert.False(await bed.DeliveredAsync("alone@one.test", TimeSpan.FromSeconds(1)));
        Assert.Contains("refused at connect: service not available: not an Up cluster member", b.Log());
    }
}
