using System.Net;
using MtaSts.Actors.Dns;
using MtaSts.Actors.TestInfra.Config;

namespace MtaSts.Actors.Policy.Tests.Dns;

/// <summary>mtasts.dns: the resolver's own defaults; every bad value is an error naming its full key.</summary>
public sealed class DnsOptionsTests
{
    private static (DnsOptions Options, List<string> Errors) Read(Dictionary<string, string> values, Dictionary<string, string[]>? lists = null) =>
        DictionaryConfigSource.Read("mtasts.dns", DnsOptions.Read, values, lists);

    [Fact]
    public void Nothing_configured_gives_the_resolvers_defaults()
    {
        var (o, errors) = Read([]);
        Assert.Empty(errors);
        Assert.Equal(new DnsResolverOptions() with { NameServers = o.Resolver.NameServers }, o.Resolver);
        Assert.Empty(o.Resolver.NameServers); // the system's resolvers
    }

    [Fact]
    public void Servers_timeout_and_retries_are_read()
    {
        var (o, errors) = Read(new() { ["mtasts.dns.timeout"] = "2s", ["mtasts.dns.retries"] = "0", ["mtasts.dns.servers"] = "" },
            new() { ["mtasts.dns.servers"] = ["127.0.0.1:5353", "10.0.0.1", "::1", "[::1]:5300"] });
        Assert.Empty(errors);
        Assert.Equal(TimeSpan.FromSeconds(2), o.Resolver.Timeout);
        Assert.Equal(0, o.Resolver.Retries);
        Assert.Equal([new IPEndPoint(IPAddress.Loopback, 5353), new IPEndPoint(IPAddress.Parse("10.0.0.1"), 53),
            new IPEndPoint(IPAddress.IPv6Loopback, 53), new IPEndPoint(IPAddress.IPv6Loopback, 5300)], o.Resolver.NameServers);
    }

    [Theory]
    [InlineData("mtasts.dns.timeout", "5", "mtasts.dns.timeout = \"5\": not a duration")]
    [InlineData("mtasts.dns.retries", "11", "mtasts.dns.retries = \"11\": out of range 0..10")]
    public void A_bad_value_is_an_error_naming_its_key(string key, string value, string expected)
    {
        var (o, errors) = Read(new() { [key] = value });
        Assert.StartsWith(expected, Assert.Single(errors));
        Assert.Equal(new DnsResolverOptions().Timeout, o.Resolver.Timeout);
    }

    [Fact]
    public void A_bad_server_is_an_error_naming_the_key()
    {
        var (_, errors) = Read(new() { ["mtasts.dns.servers"] = "" }, new() { ["mtasts.dns.servers"] = ["resolver.example"] });
        Assert.StartsWith("mtasts.dns.servers = ", Assert.Single(errors));
    }
}
