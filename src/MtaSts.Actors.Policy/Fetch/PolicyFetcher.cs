using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy.Parsing;

namespace MtaSts.Actors.Policy.Fetch;

/// <summary>
/// RFC 8461 §3.3 policy fetch: <c>GET https://mta-sts.&lt;domain&gt;/.well-known/mta-sts.txt</c> over TLS ≥ 1.2 with SNI,
/// certificate valid for <c>mta-sts.&lt;domain&gt;</c> and chained to a system root (or the extra CA bundle), only 200,
/// redirects never followed, no HTTP caching, <c>text/plain</c>, at most 64 KiB, bounded time. The policy host is
/// resolved through our <see cref="IDnsResolver"/>; through a proxy, the proxy resolves it.
/// A fresh handler per fetch: fetches are rare (once per policy id and max_age), and it keeps per-fetch state
/// (certificate error text, proxy, timeouts) exact without cross-talk between domains.
/// </summary>
public sealed class PolicyFetcher : IPolicyFetcher
{
    private readonly IDnsResolver _dns;
    private readonly MailLog _log;
    private readonly PolicyFetcherOptions _options;
    private readonly X509Certificate2Collection _extraRoots = new();

    public PolicyFetcher(IDnsResolver dns, MailLog log, PolicyFetcherOptions? options = null)
    {
        _dns = dns;
        _log = log;
        _options = options ?? new PolicyFetcherOptions();
        if (_options.ExtraCaBundlePath is { } path)
            _extraRoots.ImportFromPemFile(path);
    }

    public PolicyFetcherOptions Options => _options;

    public static Uri PolicyUri(string domain, int port = 443) =>
        new UriBuilder(Uri.UriSchemeHttps, "mta-sts." + domain, port == 443 ? -1 : port, "/.well-known/mta-sts.txt").Uri;

    public async Task<PolicyFetchResult> FetchAsync(string domain, PolicyFetchRequest request, CancellationToken ct)
    {
        domain = DestinationDomain.KeyOf(domain);
        var uri = PolicyUri(domain, _options.Port);
        var timeout = request.Timeout ?? _options.Timeout;
        var proxied = request.Proxy is not null;
        var connectTimeout = proxied ? request.ProxyConnectTimeout ?? _options.ProxyConnectTimeout
                                     : request.ConnectTimeout ?? _options.ConnectTimeout;

        _log.Debug("mtasts_policy_fetch", $"Fetch MTA-STS policy for the domain({domain})", ("domain", domain), ("url", uri.ToString()));
        if (proxied)
            _log.Debug("mtasts_policy_fetch_proxy", "Requesting MTA-STS policy fetch via proxy",
                ("domain", domain), ("proxy", RedactedProxy(request.Proxy!)));

        var state = new FetchState(uri.Host);
        using var handler = CreateHandler(state, request.Proxy, connectTimeout);
        using var client = new HttpClient(handler, disposeHandler: false) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        using var total = CancellationTokenSource.CreateLinkedTokenSource(ct);
        total.CancelAfter(timeout);
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, uri)
            {
                Version = HttpVersion.Version11,
                VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
            };
            // §3.3 "HTTP caching MUST NOT be used": also ask intermediaries (proxies) not to serve a stored copy.
            message.Headers.CacheControl = new CacheControlHeaderValue { NoCache = true, NoStore = true };
            message.Headers.Pragma.Add(new NameValueHeaderValue("no-cache"));
            message.Headers.TryAddWithoutValidation("User-Agent", _options.UserAgent);

            using var response = await client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, total.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is >= 300 and < 400)
            {
                var location = response.Headers.Location?.ToString() ?? "(no Location)";
                return Fail(domain, PolicyFetchFailure.Redirect, $"HTTP {status} redirect to {location} not followed (RFC 8461 §3.3) from {uri}");
            }
            if (status != 200)
                return Fail(domain, PolicyFetchFailure.HttpStatus, $"HTTP {status} {response.ReasonPhrase} from {uri} (only 200 is accepted)");

            var mediaType = response.Content.Headers.ContentType?.MediaType;
            if (!request.LenientContentType && !string.Equals(mediaType, "text/plain", StringComparison.OrdinalIgnoreCase))
            {
                var shown = response.Content.Headers.TryGetValues("Content-Type", out var raw) ? string.Join(", ", raw) : "(none)";
                return Fail(domain, PolicyFetchFailure.ContentType, $"Content-Type {shown} from {uri} is not text/plain");
            }

            var max = StsPolicyParser.MaxBodyBytes;
            if (response.Content.Headers.ContentLength is long announced && announced > max)
                return Fail(domain, PolicyFetchFailure.TooLarge, $"policy body of {announced} bytes (Content-Length) exceeds {max} bytes");

            var body = await ReadCappedAsync(response.Content, max, total.Token).ConfigureAwait(false);
            if (body is null)
                return Fail(domain, PolicyFetchFailure.TooLarge, $"policy body exceeds {max} bytes");

            var parsed = StsPolicyParser.Parse(body);
            var text = System.Text.Encoding.UTF8.GetString(body);
            if (!parsed.Ok)
                return Fail(domain, PolicyFetchFailure.Invalid, $"invalid policy from {uri}: {parsed.Error}", text);

            _log.Debug("mtasts_policy_fetched", $"Fetched MTA-STS policy for the domain({domain}) mode {parsed.Value!.Mode.ToWireString()} max_age {parsed.Value.MaxAgeSeconds}",
                ("domain", domain), ("mode", parsed.Value.Mode.ToWireString()), ("max_age", parsed.Value.MaxAgeSeconds),
                ("warnings", parsed.Warnings));
            return PolicyFetchResult.Success(domain, parsed.Value, text, parsed.Warnings);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            var (failure, error) = Classify(ex, state, uri, request.Proxy, timeout, connectTimeout, total.IsCancellationRequested);
            if (failure == PolicyFetchFailure.ConnectTimeout)
                _log.Debug("mtasts_policy_fetch_connect_timeout",
                    $"Request to fetch STS policy failed due to a connection timeout., for the domain {domain}",
                    ("domain", domain), ("error", error));
            return Fail(domain, failure, error);
        }
    }

    private PolicyFetchResult Fail(string domain, PolicyFetchFailure failure, string error, string? body = null)
    {
        var result = PolicyFetchResult.Failed(domain, failure, error, body);
        _log.Info("mtasts_policy_fetch_failure", $"Failure encountered while fetching MTA-STS policy for the domain({domain})",
            ("domain", domain), ("failure", failure.ToString()), ("result_type", result.FailureType?.ToWireString()), ("error", error));
        return result;
    }

    private static (PolicyFetchFailure, string) Classify(Exception ex, FetchState state, Uri uri, Uri? proxy,
        TimeSpan timeout, TimeSpan connectTimeout, bool totalExpired)
    {
        var chain = Chain(ex).ToList();
        if (chain.OfType<PolicyFetchException>().FirstOrDefault() is { } pfe) return (pfe.Failure, pfe.Message);
        if (state.CertificateError is { } certError)
            return (PolicyFetchFailure.Certificate, $"certificate of {uri.Host}: {certError}");
        if (chain.OfType<TimeoutException>().Any())
            return (PolicyFetchFailure.ConnectTimeout, proxy is null
                ? $"no connection to {uri.Host}:{uri.Port} within {connectTimeout.TotalSeconds:0.###}s (DNS, TCP and TLS)"
                : $"no tunnel through proxy {RedactedProxy(proxy)} to {uri.Host}:{uri.Port} within {connectTimeout.TotalSeconds:0.###}s");
        if (ex is OperationCanceledException || totalExpired)
            return (PolicyFetchFailure.Timeout, $"no complete response from {uri} within {timeout.TotalSeconds:0.###}s");
        if (chain.OfType<HttpRequestException>().FirstOrDefault() is { } hre)
        {
            var detail = string.Join(": ", chain.Select(e => e.Message).Distinct());
            switch (hre.HttpRequestError)
            {
                case HttpRequestError.ProxyTunnelError:
                    return (PolicyFetchFailure.Proxy, $"proxy {RedactedProxy(proxy)} refused the tunnel to {uri.Host}:{uri.Port}: {detail}");
                case HttpRequestError.SecureConnectionError:
                    return (PolicyFetchFailure.Tls, $"TLS with {uri.Host} failed: {detail}");
                case HttpRequestError.NameResolutionError:
                    return (PolicyFetchFailure.Dns, $"cannot resolve {(proxy is null ? uri.Host : proxy.Host)}: {detail}");
                case HttpRequestError.ConnectionError:
                    return (PolicyFetchFailure.Connect, $"connection to {(proxy is null ? uri.Host : "proxy " + RedactedProxy(proxy))} failed: {detail}");
            }
            if (chain.OfType<AuthenticationException>().Any())
                return (PolicyFetchFailure.Tls, $"TLS with {uri.Host} failed: {detail}");
            return (PolicyFetchFailure.Network, $"request to {uri} failed: {detail}");
        }
        if (chain.OfType<AuthenticationException>().Any())
            return (PolicyFetchFailure.Tls, $"TLS with {uri.Host} failed: {ex.Message}");
        return (PolicyFetchFailure.Network, $"request to {uri} failed: {string.Join(": ", chain.Select(e => e.Message).Distinct())}");
    }

    private static IEnumerable<Exception> Chain(Exception ex)
    {
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            yield return e;
            if (e is AggregateException agg)
                foreach (var inner in agg.InnerExceptions.SelectMany(Chain)) yield return inner;
        }
    }

    /// <summary>Reads at most <paramref name="max"/> bytes; null when the body is longer (also for chunked bodies,
    /// which carry no Content-Length: we stop reading at max+1 instead of buffering whatever the server sends).</summary>
    private static async Task<byte[]?> ReadCappedAsync(HttpContent content, int max, CancellationToken ct)
    {
        await using var stream = await content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[max + 1];
        var filled = 0;
        while (filled < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(filled), ct).ConfigureAwait(false);
            if (n == 0) return buffer.AsSpan(0, filled).ToArray();
            filled += n;
        }
        return null;
    }

    private SocketsHttpHandler CreateHandler(FetchState state, Uri? proxy, TimeSpan connectTimeout)
    {
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,                 // §3.3: 3xx MUST NOT be followed
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            PreAuthenticate = false,
            UseProxy = proxy is not null,              // never the environment's proxy settings implicitly
            Proxy = proxy is null ? null : new WebProxy(proxy) { BypassProxyOnLocal = false },
            ConnectTimeout = connectTimeout,
            PooledConnectionLifetime = TimeSpan.Zero,
            MaxConnectionsPerServer = 1,
            MaxResponseHeadersLength = 64,             // KiB
            SslOptions = new SslClientAuthenticationOptions
            {
                // §7.2 / RFC 8996: TLS 1.2 or newer. SNI (§7.1) is sent from the request host.
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                RemoteCertificateValidationCallback = (_, cert, chain, errors) => Validate(state, cert, chain, errors),
            },
            ConnectCallback = (context, token) => ConnectAsync(context.DnsEndPoint, proxy is not null, token),
        };
        return handler;
    }

    /// <summary>§3.3: the certificate must be valid for <c>mta-sts.&lt;domain&gt;</c> (SslStream checks the name against
    /// the SNI host) and chain to a trusted root: the system's, or one of the configured extra CAs.</summary>
    private bool Validate(FetchState state, X509Certificate? cert, X509Chain? chain, SslPolicyErrors errors)
    {
        if (cert is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            state.CertificateError = "no certificate presented";
            return false;
        }
        var leaf = cert as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(cert.GetRawCertData());
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            state.CertificateError = $"not valid for {state.Host} (subject {leaf.Subject}; names {string.Join(", ", DnsNames(leaf))})";
            return false;
        }
        if (errors == SslPolicyErrors.None) return true;

        if (_extraRoots.Count > 0)
        {
            using var custom = new X509Chain();
            custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            custom.ChainPolicy.CustomTrustStore.AddRange(_extraRoots);
            custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            custom.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.1")); // id-kp-serverAuth
            if (chain is not null)
                foreach (var element in chain.ChainElements)
                    if (!element.Certificate.RawDataMemory.Span.SequenceEqual(leaf.RawDataMemory.Span))
                        custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            if (custom.Build(leaf)) return true;
            state.CertificateError = Describe(custom.ChainStatus, leaf);
            return false;
        }
        state.CertificateError = chain is null ? errors.ToString() : Describe(chain.ChainStatus, leaf);
        return false;
    }

    private static string Describe(X509ChainStatus[] status, X509Certificate2 leaf)
    {
        var parts = status.Where(s => s.Status != X509ChainStatusFlags.NoError)
            .Select(s => $"{s.Status} ({s.StatusInformation.Trim()})").Distinct().ToList();
        var text = parts.Count == 0 ? "chain not trusted" : string.Join("; ", parts);
        return $"{text}; subject {leaf.Subject}, issuer {leaf.Issuer}, valid {leaf.NotBefore:u} .. {leaf.NotAfter:u}";
    }

    private static IEnumerable<string> DnsNames(X509Certificate2 cert) =>
        cert.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames());

    private async ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, bool toProxy, CancellationToken ct)
    {
        IReadOnlyList<IPAddress> addresses;
        if (IPAddress.TryParse(endpoint.Host, out var literal))
            addresses = new[] { literal };
        else if (toProxy)
        {
            // The proxy's own name comes from configuration: the system resolver is the right one for it.
            try { addresses = await System.Net.Dns.GetHostAddressesAsync(endpoint.Host, ct).ConfigureAwait(false); }
            catch (SocketException ex)
            {
                throw new PolicyFetchException(PolicyFetchFailure.Dns, $"cannot resolve proxy {endpoint.Host}: {ex.Message}");
            }
        }
        else
        {
            var answer = await _dns.AddressesAsync(endpoint.Host, ipv4: true, ipv6: true, ct).ConfigureAwait(false);
            addresses = answer.Outcome switch
            {
                DnsOutcome.Ok => answer.Records,
                DnsOutcome.NxDomain => throw new PolicyFetchException(PolicyFetchFailure.Dns, $"{endpoint.Host}: NXDOMAIN"),
                DnsOutcome.NoData => throw new PolicyFetchException(PolicyFetchFailure.Dns, $"{endpoint.Host}: no A/AAAA records"),
                _ => throw new PolicyFetchException(PolicyFetchFailure.Dns, $"{endpoint.Host}: DNS lookup failed: {answer.Error}"),
            };
        }

        var errors = new List<string>();
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, endpoint.Port), ct).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                errors.Add($"{new IPEndPoint(address, endpoint.Port)}: {ex.SocketErrorCode}");
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        var what = toProxy ? $"proxy {endpoint.Host}:{endpoint.Port}" : $"{endpoint.Host}:{endpoint.Port}";
        throw new PolicyFetchException(PolicyFetchFailure.Connect, $"connection to {what} failed: {string.Join(", ", errors)}");
    }

    private static string RedactedProxy(Uri? proxy) =>
        proxy is null ? "(none)" : new UriBuilder(proxy) { UserName = "", Password = "" }.Uri.GetLeftPart(UriPartial.Authority);

    private sealed class FetchState(string host)
    {
        public string Host { get; } = host;
        public string? CertificateError { get; set; }
    }
}

/// <summary>A classified failure raised inside the connection path (DNS, connect).</summary>
public sealed class PolicyFetchException(PolicyFetchFailure failure, string message) : Exception(message)
{
    public PolicyFetchFailure Failure { get; } = failure;
}
