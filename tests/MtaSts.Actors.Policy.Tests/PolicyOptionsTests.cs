using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.TestInfra.Config;

namespace MtaSts.Actors.Policy.Tests;

/// <summary>mtasts.policy: the fetcher's own defaults; every bad value is an error naming its full key.</summary>
public sealed class PolicyOptionsTests
{
    private static (PolicyOptions Options, List<string> Errors) Read(Dictionary<string, string> values, Dictionary<string, string[]>? lists = null) =>
        DictionaryConfigSource.Read("mtasts.policy", PolicyOptions.Read, values, lists);

    [Fact]
    public void Nothing_configured_gives_the_fetchers_defaults_direct_and_strict()
    {
        var (o, errors) = Read([]);
        Assert.Empty(errors);
        Assert.Equal(new PolicyFetcherOptions(), o.Fetcher);
        Assert.Null(o.Proxy);
        Assert.False(o.ResolveOptions("example.com").LenientContentType);
    }

    [Fact]
    public void Values_are_read_and_the_connect_timeout_also_bounds_the_proxy_tunnel()
    {
        var (o, errors) = Read(new()
        {
            ["mtasts.policy.proxy"] = "http://proxy.internal:3128",
            ["mtasts.policy.fetch-timeout"] = "30s",
            ["mtasts.policy.connect-timeout"] = "3s",
            ["mtasts.policy.https-port"] = "8443",
            ["mtasts.policy.lenient-content-type-domains"] = "",
        }, new() { ["mtasts.policy.lenient-content-type-domains"] = ["Mislabelled.Example."] });
        Assert.Empty(errors);
        Assert.Equal(new Uri("http://proxy.internal:3128"), o.ResolveOptions("a.example").Proxy);
        Assert.Equal(TimeSpan.FromSeconds(30), o.Fetcher.Timeout);
        Assert.Equal(TimeSpan.FromSeconds(3), o.Fetcher.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(3), o.Fetcher.ProxyConnectTimeout);
        Assert.Equal(8443, o.Fetcher.Port);
        Assert.True(o.ResolveOptions("MISLABELLED.example").LenientContentType);
        Assert.False(o.ResolveOptions("other.example").LenientContentType);
    }

    [Fact]
    public void Lenient_content_type_on_applies_to_every_domain()
    {
        var (o, errors) = Read(new() { ["mtasts.policy.lenient-content-type"] = "on" });
        Assert.Empty(errors);
        Assert.True(o.ResolveOptions("any.example").LenientContentType);
    }

    [Theory]
    [InlineData("https-port", "0", "mtasts.policy.https-port = \"0\": out of range 1..65535")]
    [InlineData("fetch-timeout", "60", "mtasts.policy.fetch-timeout = \"60\": not a duration")]
    [InlineData("proxy", "proxy.internal:3128", "mtasts.policy.proxy = \"proxy.internal:3128\": expected a proxy URL")]
    [InlineData("lenient-content-type", "sometimes", "mtasts.policy.lenient-content-type = \"sometimes\": expected true or false")]
    [InlineData("extra-ca-bundle", "/nonexistent/ca.pem", "mtasts.policy.extra-ca-bundle: file not found: /nonexistent/ca.pem")]
    public void A_bad_value_is_an_error_naming_its_key(string key, string value, string expected)
    {
        var (_, errors) = Read(new() { ["mtasts.policy." + key] = value });
        Assert.StartsWith(expected, Assert.Single(errors));
    }

    [Fact]
    public void A_lenient_domain_that_is_not_a_domain_is_refused()
    {
        var (_, errors) = Read(new() { ["mtasts.policy.lenient-content-type-domains"] = "" },
            new() { ["mtasts.policy.lenient-content-type-domains"] = ["exa mple.org"] });
        Assert.StartsWith("mtasts.policy.lenient-content-type-domains: ", Assert.Single(errors));
    }
}
