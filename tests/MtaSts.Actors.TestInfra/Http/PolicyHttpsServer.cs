using System.Collections.Concurrent;
using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MtaSts.Actors.TestInfra.Certificates;

namespace MtaSts.Actors.TestInfra.Http;

/// <summary>Which certificate a host presents (selected by SNI).</summary>
public enum HostCertificate
{
    /// <summary>Issued by the test CA for the host name.</summary>
    Valid,
    /// <summary>Issued by the test CA, for another name.</summary>
    WrongName,
    /// <summary>Issued by the test CA for the host name, expired yesterday.</summary>
    Expired,
    /// <summary>Self-signed for the host name (no chain to any trusted root).</summary>
    SelfSigned,
}

/// <summary>What a host answers on <c>/.well-known/mta-sts.txt</c>.</summary>
public sealed record PolicyRoute(string Description, Func<HttpContext, CancellationToken, Task> Handler)
{
    public const string DefaultPolicy = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n";

    /// <summary>200 with the body.</summary>
    public static PolicyRoute Policy(string body, string? contentType = "text/plain; charset=utf-8") =>
        new($"policy ({contentType ?? "no content type"})", async (ctx, ct) =>
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            ctx.Response.StatusCode = 200;
            if (contentType is not null) ctx.Response.ContentType = contentType;
            ctx.Response.ContentLength = bytes.Length;
            await ctx.Response.Body.WriteAsync(bytes, ct);
        });

    /// <summary>Any status with an optional (possibly valid-looking) body.</summary>
    public static PolicyRoute Status(int status, string body = "") =>
        new($"HTTP {status}", async (ctx, ct) =>
        {
            ctx.Response.StatusCode = status;
            ctx.Response.ContentType = "text/plain";
            if (body.Length > 0) await ctx.Response.WriteAsync(body, ct);
        });

    public static PolicyRoute Redirect(string location, int status = 301) =>
        new($"redirect {status} to {location}", (ctx, _) =>
        {
            ctx.Response.StatusCode = status;
            ctx.Response.Headers.Location = location;
            return Task.CompletedTask;
        });

    /// <summary>Announces a body over 64 KiB in Content-Length (the client must give up before reading it).</summary>
    public static PolicyRoute OversizedContentLength(int bytes = 131_193) =>
        new($"Content-Length {bytes}", async (ctx, ct) =>
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "text/plain";
            ctx.Response.ContentLength = bytes;
            var chunk = Encoding.ASCII.GetBytes(DefaultPolicy + new string('#', Math.Max(0, bytes - DefaultPolicy.Length)));
            await ctx.Response.Body.WriteAsync(chunk.AsMemory(0, bytes), ct);
        });

    /// <summary>A valid policy followed by 2049 × 64 bytes, chunked (no Content-Length).</summary>
    public static PolicyRoute OversizedChunked(int chunks = 2049, int chunkSize = 64) =>
        new($"chunked {chunks}x{chunkSize}", async (ctx, ct) =>
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "text/plain";
            await ctx.Response.Body.WriteAsync(Encoding.ASCII.GetBytes(DefaultPolicy), ct);
            var chunk = Encoding.ASCII.GetBytes(new string('a', chunkSize));
            for (var i = 0; i < chunks; i++)
            {
                await ctx.Response.Body.WriteAsync(chunk, ct);
                await ctx.Response.Body.FlushAsync(ct);
            }
        });

    /// <summary>Accepts the request and never answers (headers never come).</summary>
    public static PolicyRoute Hang() =>
        new("hang", async (_, ct) => await Task.Delay(Timeout.Infinite, ct));

    /// <summary>Sends headers and part of the body, then stalls.</summary>
    public static PolicyRoute SlowBody() =>
        new("slow body", async (ctx, ct) =>
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "text/plain";
            ctx.Response.ContentLength = 1000;
            await ctx.Response.Body.WriteAsync(Encoding.ASCII.GetBytes("version: STSv1\n"), ct);
            await ctx.Response.Body.FlushAsync(ct);
            await Task.Delay(Timeout.Infinite, ct);
        });
}

/// <summary>
/// Loopback HTTPS policy host (Kestrel, 127.0.0.1, ephemeral port). Every virtual host (<c>mta-sts.&lt;domain&gt;</c>)
/// gets its own certificate selected by SNI and its own route; unknown hosts get 404 and a self-signed certificate.
/// Counts requests per host (single-flight and negative-cache tests).
/// </summary>
public sealed class PolicyHttpsServer : IAsyncDisposable
{
    private readonly TestCertificateAuthority _ca;
    private readonly ConcurrentDictionary<string, (PolicyRoute Route, HostCertificate Cert)> _hosts = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<(string, HostCertificate), X509Certificate2> _certs = new();
    private readonly ConcurrentDictionary<string, int> _requests = new(StringComparer.OrdinalIgnoreCase);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lazy<X509Certificate2> _fallbackCert = new(() => TestCertificateAuthority.SelfSigned("unknown.invalid"));
    private WebApplication? _app;

    public int Port { get; private set; }
    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);
    public TestCertificateAuthority Authority => _ca;

    private PolicyHttpsServer(TestCertificateAuthority ca) => _ca = ca;

    public static async Task<PolicyHttpsServer> StartAsync(TestCertificateAuthority ca, CancellationToken ct = default)
    {
        var server = new PolicyHttpsServer(ca);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelCore();
        builder.WebHost.UseShutdownTimeout(TimeSpan.FromSeconds(2));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ServerCertificateSelector = (_, sni) => server.SelectCertificate(sni),
            }));
        });
        var app = builder.Build();
        app.Run(server.HandleAsync);
        await app.StartAsync(ct);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Port = new Uri(address).Port;
        server._app = app;
        return server;
    }

    /// <summary>Serves <paramref name="route"/> at <c>mta-sts.&lt;domain&gt;</c>.</summary>
    public PolicyHttpsServer Serve(string domain, PolicyRoute route, HostCertificate certificate = HostCertificate.Valid) =>
        ServeHost("mta-sts." + domain, route, certificate);

    /// <summary>200 text/plain with the policy body at <c>mta-sts.&lt;domain&gt;</c>.</summary>
    public PolicyHttpsServer ServePolicy(string domain, string body = PolicyRoute.DefaultPolicy) =>
        Serve(domain, PolicyRoute.Policy(body));

    public PolicyHttpsServer ServeHost(string host, PolicyRoute route, HostCertificate certificate = HostCertificate.Valid)
    {
        _hosts[host.TrimEnd('.')] = (route, certificate);
        return this;
    }

    public PolicyHttpsServer Remove(string domain)
    {
        _hosts.TryRemove("mta-sts." + domain, out _);
        return this;
    }

    /// <summary>Requests received for <c>mta-sts.&lt;domain&gt;</c> (any path).</summary>
    public int Requests(string domain) => RequestsForHost("mta-sts." + domain);

    public int RequestsForHost(string host) => _requests.TryGetValue(host, out var n) ? n : 0;

    public int TotalRequests => _requests.Values.Sum();

    private X509Certificate2 SelectCertificate(string? sni)
    {
        if (sni is null || !_hosts.TryGetValue(sni, out var host)) return _fallbackCert.Value;
        return _certs.GetOrAdd((sni.ToLowerInvariant(), host.Cert), key => key.Item2 switch
        {
            HostCertificate.Valid => _ca.Issue(key.Item1),
            HostCertificate.WrongName => _ca.Issue("wrong-name.example.invalid"),
            HostCertificate.Expired => _ca.Issue([key.Item1], DateTimeOffset.UtcNow.AddDays(-20), DateTimeOffset.UtcNow.AddDays(-1)),
            HostCertificate.SelfSigned => TestCertificateAuthority.SelfSigned(key.Item1),
            _ => throw new ArgumentOutOfRangeException(nameof(sni)),
        });
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        var host = ctx.Request.Host.Host;
        _requests.AddOrUpdate(host, 1, (_, n) => n + 1);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, _stopping.Token);
        try
        {
            if (!_hosts.TryGetValue(host, out var entry) || ctx.Request.Path != "/.well-known/mta-sts.txt")
            {
                ctx.Response.StatusCode = 404;
                return;
            }
            await entry.Route.Handler(ctx, linked.Token);
        }
        catch (OperationCanceledException) { ctx.Abort(); }
        catch (IOException) { ctx.Abort(); }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        if (_app is not null)
        {
            try { await _app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token); } catch (Exception) { }
            await _app.DisposeAsync();
        }
        foreach (var c in _certs.Values) c.Dispose();
        if (_fallbackCert.IsValueCreated) _fallbackCert.Value.Dispose();
        _stopping.Dispose();
    }
}
