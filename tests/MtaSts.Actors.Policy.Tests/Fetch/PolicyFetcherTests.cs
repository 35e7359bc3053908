using System.Net;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Proxy;

namespace MtaSts.Actors.Policy.Tests.Fetch;

/// <summary>Skips (statically, with the reason) when Debian's tinyproxy is not installed.</summary>
public sealed class TinyproxyFactAttribute : FactAttribute
{
    public TinyproxyFactAttribute()
    {
        if (!TinyproxyInstance.IsAvailable) Skip = $"{TinyproxyInstance.BinaryPath} missing: run tests/setup-env.sh as root";
    }
}

public sealed class PolicyFetcherTests : IAsyncLifetime
{
    private const string Domain = "example.test";
    private PolicyTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await PolicyTestBed.StartAsync();
    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private Task<PolicyFetchResult> Fetch(PolicyFetchRequest? request = null, PolicyFetcher? fetcher = null) =>
        (fetcher ?? _bed.Fetcher()).FetchAsync(Domain, request ?? PolicyFetchRequest.Default, PolicyTestBed.Ct());

    private void AssertFailureLogged() =>
        Assert.Contains($"Info: Failure encountered while fetching MTA-STS policy for the domain({Domain})", _bed.Lines);

    [Fact]
    public async Task Fetches_valid_policy_with_sni_and_test_ca()
    {
        _bed.Publish(Domain, "1");
        var result = await Fetch();
        Assert.True(result.Ok, result.Error);
        Assert.Equal(StsMode.Enforce, result.Policy!.Mode);
        Assert.Equal("mx.example.test", Assert.Single(result.Policy.Mx).Pattern);
        Assert.Equal(86400, result.Policy.MaxAgeSeconds);
        Assert.Equal(PolicyRoute.DefaultPolicy, result.Body);
        Assert.Null(result.FailureType);
        Assert.Contains($"Debug: Fetch MTA-STS policy for the domain({Domain})", _bed.Lines);
        Assert.DoesNotContain(_bed.Lines, l => l.Contains("Failure encountered"));
        Assert.Equal(1, _bed.Https.Requests(Domain));
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("TEXT/PLAIN; charset=US-ASCII; x-extra=ignored")]
    [InlineData("text/plain; charset=iso-8859-1")]
    public async Task Text_plain_with_any_parameters_is_accepted(string contentType)
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(PolicyRoute.DefaultPolicy, contentType));
        var result = await Fetch();
        Assert.True(result.Ok, result.Error);
    }

    [Theory]
    [InlineData("text/html")]
    [InlineData(null)]
    public async Task Other_content_type_is_policy_invalid_unless_lenient(string? contentType)
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy(PolicyRoute.DefaultPolicy, contentType));
        var strict = await Fetch();
        Assert.False(strict.Ok);
        Assert.Equal(PolicyFetchFailure.ContentType, strict.Failure);
        Assert.Equal(TlsRptResultType.StsPolicyInvalid, strict.FailureType);
        Assert.Contains("not text/plain", strict.Error);
        AssertFailureLogged();

        var lenient = await Fetch(new PolicyFetchRequest { LenientContentType = true });
        Assert.True(lenient.Ok, lenient.Error);
    }

    [Theory]
    [InlineData(301)]
    [InlineData(302)]
    [InlineData(307)]
    public async Task Redirect_is_never_followed(int status)
    {
        var target = $"https://mta-sts.elsewhere.test:{_bed.Https.Port}/.well-known/mta-sts.txt";
        _bed.Publish("elsewhere.test", "1");
        _bed.Publish(Domain, "1", PolicyRoute.Redirect(target, status));
        var result = await Fetch();
        Assert.Equal(PolicyFetchFailure.Redirect, result.Failure);
        Assert.Equal(TlsRptResultType.StsPolicyFetchError, result.FailureType);
        Assert.Contains(target, result.Error);
        Assert.Contains($"HTTP {status}", result.Error);
        Assert.Equal(0, _bed.Https.Requests("elsewhere.test"));
        AssertFailureLogged();
    }

    [Theory]
    [InlineData(404)]
    [InlineData(500)]
    [InlineData(204)]
    [InlineData(206)]
    public async Task Only_200_is_accepted(int status)
    {
        _bed.Publish(Domain, "1", PolicyRoute.Status(status, status is 204 ? "" : PolicyRoute.DefaultPolicy));
        var result = await Fetch();
        Assert.Equal(PolicyFetchFailure.HttpStatus, result.Failure);
        Assert.Equal(TlsRptResultType.StsPolicyFetchError, result.FailureType);
        Assert.Contains($"HTTP {status}", result.Error);
    }

    [Fact]
    public async Task Oversized_content_length_is_rejected_before_the_body()
    {
        _bed.Publish(Domain, "1", PolicyRoute.OversizedContentLength());
        var result = await Fetch();
        Assert.Equal(PolicyFetchFailure.TooLarge, result.Failure);
        Assert.Equal(TlsRptResultType.StsPolicyInvalid, result.FailureType);
        Assert.Contains("131193", result.Error);
    }

    [Fact]
    public async Task Oversized_chunked_body_is_rejected_while_reading()
    {
        _bed.Publish(Domain, "1", PolicyRoute.OversizedChunked());
        var result = await Fetch();
        Assert.Equal(PolicyFetchFailure.TooLarge, result.Failure);
        Assert.Contains("65536", result.Error);
    }

    [Fact]
    public async Task Body_of_exactly_64_KiB_is_read_and_parsed()
    {
        var body = PolicyRoute.DefaultPolicy + "x-pad: " + new string('a', 65536 - PolicyRoute.DefaultPolicy.Length - 8) + "\n";
        Assert.Equal(65536, body.Length);
        _bed.Publish(Domain, "1", PolicyRoute.Policy(body));
        var result = await Fetch();
        Assert.True(result.Ok, result.Error);
    }

    [Fact]
    public async Task Invalid_policy_body_is_policy_invalid_with_parser_reason()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Policy("version: STSv1\nmode: enforce\nmax_age: 86400\n"));
        var result = await Fetch();
        Assert.Equal(PolicyFetchFailure.Invalid, result.Failure);
        Assert.Equal(TlsRptResultType.StsPolicyInvalid, result.FailureType);
        Assert.Contains("invalid policy", result.Error);
        Assert.NotNull(result.Body);
    }

    [Fact]
    public async Task Server_that_never_answers_hits_the_total_timeout()
    {
        _bed.Publish(Domain, "1", PolicyRoute.Hang());
        var result = await Fetch(new PolicyFetchRequest { Timeout = TimeSpan.FromSeconds(1.5) });
        Assert.Equal(PolicyFetchFailure.Timeout, result.Failure);
        Assert.Equal(TlsRptResultType.StsPolicyFetchError, result.FailureType);
        Assert.Contains("1.5s", result.Error);
        AssertFailureLogged();
        Assert.DoesNotContain(_bed.Lines, l => l.Contains("connection timeout"));
    }

    [Fact]
    public async Task Stalled_body_hits_the_total_timeout()
    {
        _bed.Publish(Domain, "1", PolicyRoute.SlowBody());
        var result = await Fetch(new PolicyFetchRequest { Timeout = TimeSpan.FromSeconds(1.5) });
        Assert.Equal(PolicyFetchFailure.Timeout, result.Failure);
    }

    [Theory]
    [InlineData(HostCertificate.WrongName, "not valid for mta-sts.example.test")]
    [InlineData(HostCertificate.Expired, "NotTimeValid")]
    [InlineData(HostCertificate.SelfSigned, "subject CN=mta-sts.example.test")]
    public async Task Certificate_problems_are_webpki_invalid(HostCertificate cert, string expected)
    {
        _bed.Publish(Domain, "1", cert: cert);
        var result = await Fetch();
        Assert.Equal(PolicyFetchFailure.Certificate, result.Failure);
        Assert.Equal(TlsRptResultType.StsWebpkiInvalid, result.FailureType);
        Assert.Contains(expected, result.Error);
        Assert.Equal(0, _bed.Https.Requests(Domain));
        AssertFailureLogged();
    }

    [Fact]
    public async Task Private_ca_is_not_trusted_without_the_extra_bundle()
    {
        _bed.Publish(Domain, "1");
        var result = await Fetch(fetcher: _bed.Fetcher(trustTestCa: false));
        Assert.Equal(PolicyFetchFailure.Certificate, result.Failure);
        Assert.Equal(TlsRptResultType.StsWebpkiInvalid, result.FailureType);
    }

    [Fact]
    public async Task Policy_host_resolution_goes_through_our_dns()
    {
        _bed.Publish(Domain, "1");
        _bed.Dns.Remove("mta-sts." + Domain);
        var nx = await Fetch();
        Assert.Equal(PolicyFetchFailure.Dns, nx.Failure);
        Assert.Contains("NXDOMAIN", nx.Error);
        Assert.True(_bed.Dns.QueryCount("mta-sts." + Domain) >= 1);

        _bed.Dns.AddA("mta-sts." + Domain, "127.0.0.1").SetFault("mta-sts." + Domain, TestInfra.Dns.DnsFault.ServFail);
        var servfail = await Fetch();
        Assert.Equal(PolicyFetchFailure.Dns, servfail.Failure);
        Assert.Contains("SERVFAIL", servfail.Error);
        Assert.Equal(TlsRptResultType.StsPolicyFetchError, servfail.FailureType);
    }

    [Fact]
    public async Task Connection_refused_is_fetch_error()
    {
        _bed.Publish(Domain, "1");
        // Kestrel listens on 127.0.0.1 only; 127.0.0.2 on the same port refuses.
        _bed.Dns.Remove("mta-sts." + Domain).AddA("mta-sts." + Domain, "127.0.0.2");
        var result = await Fetch();
        Assert.Equal(PolicyFetchFailure.Connect, result.Failure);
        Assert.Contains("127.0.0.2", result.Error);
    }

    [Fact]
    public async Task Tls_that_never_completes_is_a_connection_timeout()
    {
        await using var silent = new HangingProxy(); // accepts TCP, never speaks TLS
        _bed.Publish(Domain, "1");
        var fetcher = new PolicyFetcher(_bed.Resolver, _bed.Log, new PolicyFetcherOptions
        {
            Port = silent.Port, ExtraCaBundlePath = _bed.CaBundlePath, ConnectTimeout = TimeSpan.FromSeconds(1),
        });
        var result = await Fetch(fetcher: fetcher);
        Assert.Equal(PolicyFetchFailure.ConnectTimeout, result.Failure);
        Assert.Contains($"Debug: Request to fetch STS policy failed due to a connection timeout., for the domain {Domain}", _bed.Lines);
        AssertFailureLogged();
    }

    [Fact]
    public async Task Hung_proxy_fails_on_the_proxy_connect_timeout_with_the_vendor_line()
    {
        await using var proxy = new HangingProxy();
        _bed.Publish(Domain, "1");
        var result = await Fetch(new PolicyFetchRequest { Proxy = proxy.Uri, ProxyConnectTimeout = TimeSpan.FromSeconds(1) });
        Assert.Equal(PolicyFetchFailure.ConnectTimeout, result.Failure);
        Assert.Equal(TlsRptResultType.StsPolicyFetchError, result.FailureType);
        Assert.Contains("proxy", result.Error);
        Assert.True(proxy.Accepted >= 1);
        var lines = _bed.Lines;
        Assert.Contains($"Debug: Fetch MTA-STS policy for the domain({Domain})", lines);
        Assert.Contains("Debug: Requesting MTA-STS policy fetch via proxy", lines);
        Assert.Contains($"Debug: Request to fetch STS policy failed due to a connection timeout., for the domain {Domain}", lines);
        AssertFailureLogged();
        Assert.Equal(0, _bed.Https.Requests(Domain));
    }

    [Fact]
    public async Task Refused_proxy_is_a_connect_failure()
    {
        _bed.Publish(Domain, "1");
        var result = await Fetch(new PolicyFetchRequest { Proxy = HangingProxy.RefusingUri() });
        Assert.Equal(PolicyFetchFailure.Connect, result.Failure);
        Assert.Contains("proxy", result.Error);
        AssertFailureLogged();
    }

    [TinyproxyFact]
    public async Task Fetches_through_tinyproxy_which_resolves_the_policy_host()
    {
        _bed.Publish(Domain, "1");
        // Our DNS must not be asked: through a proxy, the proxy resolves mta-sts.<domain>.
        _bed.Dns.Remove("mta-sts." + Domain);
        await using var proxy = await TinyproxyInstance.StartAsync(new Dictionary<string, IPAddress> { ["mta-sts." + Domain] = IPAddress.Loopback });
        var result = await Fetch(new PolicyFetchRequest { Proxy = proxy.Uri });
        Assert.True(result.Ok, result.Error + "\n" + proxy.Output);
        Assert.Equal(1, _bed.Https.Requests(Domain));
        Assert.Equal(0, _bed.Dns.QueryCount("mta-sts." + Domain));
        Assert.Contains("Debug: Requesting MTA-STS policy fetch via proxy", _bed.Lines);
    }

    [TinyproxyFact]
    public async Task Tinyproxy_refusing_the_tunnel_is_a_proxy_failure()
    {
        _bed.Publish(Domain, "1");
        await using var proxy = await TinyproxyInstance.StartAsync(); // cannot resolve mta-sts.example.test
        var result = await Fetch(new PolicyFetchRequest { Proxy = proxy.Uri });
        Assert.Equal(PolicyFetchFailure.Proxy, result.Failure);
        Assert.Equal(TlsRptResultType.StsPolicyFetchError, result.FailureType);
        AssertFailureLogged();
    }

    [TinyproxyFact]
    public async Task Certificate_is_still_checked_through_the_proxy()
    {
        _bed.Publish(Domain, "1", cert: HostCertificate.WrongName);
        await using var proxy = await TinyproxyInstance.StartAsync(new Dictionary<string, IPAddress> { ["mta-sts." + Domain] = IPAddress.Loopback });
        var result = await Fetch(new PolicyFetchRequest { Proxy = proxy.Uri });
        Assert.Equal(PolicyFetchFailure.Certificate, result.Failure);
        Assert.Equal(TlsRptResultType.StsWebpkiInvalid, result.FailureType);
    }
}
