using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Dns;

namespace MtaSts.Actors.TlsRpt;

/// <summary>RFC 8460 §5.4: POST of the gzip report as <c>application/tlsrpt+gzip</c>; any 2xx is success. Like the
/// MTA-STS policy fetcher: the gateway's DNS resolver for the collector's name, an explicit HTTP proxy (CONNECT) when
/// configured (never the environment's), TLS 1.2+, certificate checked against the system roots or the extra CA
/// bundle, no redirects.</summary>
public sealed class TlsRptHttpPoster(IDnsResolver dns, Func<Uri?> proxy, IReadOnlyList<X509Certificate2> extraRoots, TimeSpan timeout)
{
    public async Task<(bool Ok, string Detail)> PostAsync(Uri uri, byte[] gzip, CancellationToken ct)
    {
        var p = proxy();
        using var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = p is not null,
            Proxy = p is null ? null : new WebProxy(p) { BypassProxyOnLocal = false },
            PooledConnectionLifetime = TimeSpan.Zero,
            ConnectTimeout = TimeSpan.FromSeconds(Math.Min(30, timeout.TotalSeconds)),
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                RemoteCertificateValidationCallback = (_, cert, chain, errors) => Validate(cert, chain, errors),
            },
            ConnectCallback = (ctx, token) => ConnectAsync(ctx.DnsEndPoint, p is not null, token),
        };
        using var client = new HttpClient(handler) { Timeout = timeout };
        using var content = new ByteArrayContent(gzip);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/tlsrpt+gzip");
        try
        {
            using var response = await client.PostAsync(uri, content, ct).ConfigureAwait(false);
            var code = (int)response.StatusCode;
            return (code is >= 200 and < 300, $"HTTP {code}");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException or SocketException)
        {
            var e = ex;
            while (e.InnerException is not null) e = e.InnerException;
            return (false, ex is TaskCanceledException && !ct.IsCancellationRequested ? $"timeout after {timeout.TotalSeconds:0}s" : e.Message);
        }
    }

    private bool Validate(X509Certificate? cert, X509Chain? chain, SslPolicyErrors errors)
    {
        if (cert is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
            return false;
        if (errors == SslPolicyErrors.None) return true;
        if (extraRoots.Count == 0) return false;
        var leaf = cert as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(cert.GetRawCertData());
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(extraRoots.ToArray());
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
            foreach (var el in chain.ChainElements) custom.ChainPolicy.ExtraStore.Add(el.Certificate);
        return custom.Build(leaf);
    }

    private async ValueTask<Stream> ConnectAsync(DnsEndPoint ep, bool toProxy, CancellationToken ct)
    {
        IReadOnlyList<IPAddress> addresses;
        if (IPAddress.TryParse(ep.Host, out var literal)) addresses = [literal];
        else if (toProxy) addresses = await System.Net.Dns.GetHostAddressesAsync(ep.Host, ct).ConfigureAwait(false);
        else
        {
            var answer = await dns.AddressesAsync(ep.Host, true, true, ct).ConfigureAwait(false);
            if (!answer.IsOk) throw new HttpRequestException($"{ep.Host}: {answer.Outcome} {answer.Error}");
            addresses = answer.Records;
        }
        Exception? last = null;
        foreach (var a in addresses)
        {
            var s = new Socket(a.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await s.ConnectAsync(new IPEndPoint(a, ep.Port), ct).ConfigureAwait(false);
                return new NetworkStream(s, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                s.Dispose();
                last = ex;
            }
        }
        throw new HttpRequestException($"connection to {ep.Host}:{ep.Port} failed: {last?.Message ?? "no address"}");
    }
}
