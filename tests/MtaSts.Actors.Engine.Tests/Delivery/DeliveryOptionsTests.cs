using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.TestInfra.Config;

namespace MtaSts.Actors.Engine.Tests.Delivery;

/// <summary>mtasts.delivery: the outbound connection's and the engine's own defaults; every bad value is an error
/// naming its full key.</summary>
public sealed class DeliveryOptionsTests
{
    private static (DeliveryOptions Options, List<string> Errors) Read(Dictionary<string, string> values) =>
        DictionaryConfigSource.Read("mtasts.delivery", DeliveryOptions.Read, values);

    [Fact]
    public void Nothing_configured_gives_the_outbound_and_engine_defaults()
    {
        var (o, errors) = Read([]);
        Assert.Empty(errors);
        var outbound = new OutboundOptions();
        Assert.Equal(outbound.ConnectTimeout, o.ConnectTimeout);
        Assert.Equal(outbound.CommandTimeout, o.CommandTimeout);
        Assert.Equal(outbound.DataTimeout, o.DataTimeout);
        Assert.Equal(new EngineTuning().ConnectionIdleTime, o.ConnectionIdleTime);
        Assert.Equal(1000, o.MaxConnections);
        Assert.Equal(20, o.MxRollupMaxConnections);
        Assert.Null(o.MxOverrideMap());
    }

    [Fact]
    public void Timeouts_and_the_mx_override_are_read()
    {
        var (o, errors) = Read(new()
        {
            ["mtasts.delivery.connect-timeout"] = "5s",
            ["mtasts.delivery.command-timeout"] = "2m",
            ["mtasts.delivery.data-timeout"] = "3m",
            ["mtasts.delivery.connection-idle-time"] = "200ms",
            ["mtasts.delivery.max-connections"] = "250",
            ["mtasts.delivery.mx-rollup-max-connections"] = "0",
            ["mtasts.delivery.mx-override.*"] = "127.0.0.1:2600",
            ["mtasts.delivery.mx-override.b.test"] = "10.0.0.1:25, 10.0.0.2",
        });
        Assert.Empty(errors);
        Assert.Equal(TimeSpan.FromSeconds(5), o.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMinutes(2), o.CommandTimeout);
        Assert.Equal(TimeSpan.FromMinutes(3), o.DataTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(200), o.ConnectionIdleTime);
        Assert.Equal(250, o.MaxConnections);
        Assert.Equal(0, o.MxRollupMaxConnections);
        var map = o.MxOverrideMap()!;
        Assert.Equal(2600, Assert.Single(map("a.test")!).Port);
        Assert.Equal(["10.0.0.1", "10.0.0.2"], map("B.TEST")!.Select(h => h.Host));
    }

    [Theory]
    [InlineData("mtasts.delivery.connect-timeout", "soon", "mtasts.delivery.connect-timeout = \"soon\": not a duration")]
    [InlineData("mtasts.delivery.data-timeout", "600", "mtasts.delivery.data-timeout = \"600\": not a duration")]
    [InlineData("mtasts.delivery.max-connections", "0", "mtasts.delivery.max-connections = \"0\": out of range 1..1000000")]
    [InlineData("mtasts.delivery.mx-rollup-max-connections", "-1", "mtasts.delivery.mx-rollup-max-connections = \"-1\": out of range 0..1000000")]
    [InlineData("mtasts.delivery.mx-override.*", "[::1", "mtasts.delivery.mx-override.\"*\": bad host:port")]
    [InlineData("mtasts.delivery.max-recipients-per-transaction", "50", "mtasts.delivery.max-recipients-per-transaction is no longer a gateway setting")]
    public void A_bad_value_is_an_error_naming_its_key(string key, string value, string expected)
    {
        var (_, errors) = Read(new() { [key] = value });
        Assert.StartsWith(expected, Assert.Single(errors));
    }
}
