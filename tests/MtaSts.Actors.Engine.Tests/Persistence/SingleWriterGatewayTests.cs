using Akka.Actor;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Engine.Persistence;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.TestInfra.Net;

namespace MtaSts.Actors.Engine.Tests.Persistence;

/// <summary>The gateway's embedded SQLite mode runs the single-writer journal and snapshot store, and what a
/// destination journaled is there after a restart of the process on the same data directory.</summary>
public sealed class SingleWriterGatewayTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_embedded_gateway_uses_the_single_writer_plugins_and_a_journaled_suspension_survives_a_restart()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "mtasts-e2e-swj-" + Guid.NewGuid().ToString("N"));
        var mx = $"\"*\" = \"127.0.0.1:{LoopbackPort.Free()}\"";
        var gw = await GatewayFixture.StartAsync(mx, "", dataDir);
        var config = gw.Gateway.System.Settings.Config;
        Assert.Equal(SingleWriterSqlite.JournalClass, config.GetString("akka.persistence.journal.sql.class"));
        Assert.Equal(SingleWriterSqlite.SnapshotStoreClass, config.GetString("akka.persistence.snapshot-store.sql.class"));
        var held = DestinationDomain.Parse("held.test");
        var fresh = DestinationDomain.Parse("fresh.test");
        Assert.True((await gw.Gateway.Region.Ask<DestinationStatus>(new SuspendDelivery(held, "test"), Wait)).Suspended);
        await gw.StopAsync();

        await gw.RestartAsync(mx, "");
        await using (gw)
        {
            Assert.True((await gw.Gateway.Region.Ask<DestinationStatus>(new GetDestinationStatus(held), Wait)).Suspended);
            Assert.False((await gw.Gateway.Region.Ask<DestinationStatus>(new GetDestinationStatus(fresh), Wait)).Suspended);
        }
    }
}
