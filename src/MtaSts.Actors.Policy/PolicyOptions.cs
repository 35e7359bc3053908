using MtaSts.Actors.Configuration;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.Policy.Resolution;

namespace MtaSts.Actors.Policy;

/// <summary>The <c>mtasts.policy</c> section: how MTA-STS policies are fetched (every fetcher default is the one
/// written in <see cref="PolicyFetcherOptions"/>) and the per-fetch settings a reload may change.</summary>
public sealed record PolicyOptions
{
    public PolicyFetcherOptions Fetcher { get; init; } = new();

    /// <summary>HTTP proxy for policy fetches (CONNECT); null: direct.</summary>
    public Uri? Proxy { get; init; }

    /// <summary>Accept any Content-Type from every policy host (RFC 8461 §3.2 says text/plain).</summary>
    public bool LenientContentType { get; init; }

    /// <summary>Domains whose policy host may send a Content-Type other than text/plain (many real ones do).</summary>
    public IReadOnlySet<string> LenientContentTypeDomains { get; init; } = new HashSet<string>();

    /// <summary>The per-fetch options for <paramref name="domain"/> (read from the live configuration, so that a proxy
    /// change applies without a restart).</summary>
    public PolicyResolveOptions ResolveOptions(string domain) => new()
    {
        Proxy = Proxy,
        LenientContentType = LenientContentType || LenientContentTypeDomains.Contains(DestinationDomain.KeyOf(domain)),
    };

    /// <summary>Reads <c>mtasts.policy { proxy, fetch-timeout, connect-timeout, extra-ca-bundle, https-port,
    /// lenient-content-type, lenient-content-type-domains }</c>; every bad value is an error naming its key.</summary>
    public static PolicyOptions Read(ConfigSection s)
    {
        var d = new PolicyFetcherOptions();
        var connectTimeout = s.Duration("connect-timeout", d.ConnectTimeout);
        var options = new PolicyOptions
        {
            Fetcher = d with
            {
                ExtraCaBundlePath = s.NonEmpty("extra-ca-bundle"),
                Timeout = s.Duration("fetch-timeout", d.Timeout),
                ConnectTimeout = connectTimeout,
                // connect-timeout also bounds the proxy tunnel set-up (a hung proxy), not only direct connects.
                ProxyConnectTimeout = connectTimeout,
                Port = s.Int("https-port", d.Port, 1, 65535),
            },
            Proxy = s.NonEmpty("proxy") is null ? null : s.Get<Uri?>("proxy", null, p =>
                new Uri(p) is { Scheme: "http" or "https" or "socks4" or "socks4a" or "socks5" } u ? u
                    : throw new FormatException("expected a proxy URL such as http://proxy.internal:3128")),
            LenientContentType = s.Bool("lenient-content-type", false),
            LenientContentTypeDomains = s.List("lenient-content-type-domains").Select(name =>
                DestinationDomain.TryParse(name, out var domain, out var why) ? domain.Name
                    : Fail($"{s.Path}.lenient-content-type-domains: {why}")).OfType<string>().ToHashSet(StringComparer.OrdinalIgnoreCase),
        };
        if (options.Fetcher.ExtraCaBundlePath is { } bundle && !File.Exists(bundle))
            s.Error($"{s.Path}.extra-ca-bundle: file not found: {bundle}");
        return options;

        string? Fail(string error)
        {
            s.Error(error);
            return null;
        }
    }
}
