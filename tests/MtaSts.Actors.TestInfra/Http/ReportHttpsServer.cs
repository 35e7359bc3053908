using System.Collections.Concurrent;
using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
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

/// <summary>One POST received by <see cref="ReportHttpsServer"/>.</summary>
public sealed record ReceivedPost(string Host, string Path, string? ContentType, byte[] Body, int Status);

/// <summary>A TLS-RPT HTTPS collector (RFC 8460 §5.4) on loopback: Kestrel with a test-CA certificate for whatever name
/// the client asks for (SNI); records every POST. <see cref="FailFirst"/> answers 503 to the first N requests of a path.</summary>
public sealed class ReportHttpsServer : IAsyncDisposable
{
    private readonly TestCertificateAuthority _ca;
    private readonly ConcurrentDictionary<string, X509Certificate2> _certs = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentQueue<ReceivedPost> _posts = new();
    private readonly ConcurrentDictionary<string, int> _failuresLeft = new();
    private WebApplication? _app;

    private ReportHttpsServer(TestCertificateAuthority ca) => _ca = ca;

    public int Port { get; private set; }
    public IReadOnlyList<ReceivedPost> Posts => _posts.ToArray();

    public void FailFirst(string path, int requests) => _failuresLeft[path] = requests;

    public static async Task<ReportHttpsServer> StartAsync(TestCertificateAuthority ca)
    {
        var server = new ReportHttpsServer(ca);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(new HttpsConnectionAdapterOptions
            {
                SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ServerCertificateSelector = (_, sni) => server._certs.GetOrAdd(sni ?? "unknown.invalid", n => ca.Issue(n)),
            }));
        });
        var app = builder.Build();
        app.Run(server.HandleAsync);
        await app.StartAsync();
        server.Port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        server._app = app;
        return server;
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        using var ms = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(ms);
        var path = ctx.Request.Path.Value ?? "/";
        var status = ctx.Request.Method != "POST" ? 405 : 200;
        if (status == 200 && _failuresLeft.TryGetValue(path, out var left) && left > 0)
        {
            _failuresLeft[path] = left - 1;
            status = 503;
        }
        _posts.Enqueue(new ReceivedPost(ctx.Request.Host.Host, path, ctx.Request.ContentType, ms.ToArray(), status));
        ctx.Response.StatusCode = status;
    }

    public async Task<IReadOnlyList<ReceivedPost>> WaitForPostsAsync(Func<ReceivedPost, bool> match, int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Posts.Count(match) < count)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{Posts.Count(match)} of {count} POSTs within {timeout}");
            await Task.Delay(50);
        }
        return Posts.Where(match).ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            try { await _app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token); } catch (Exception) { }
            await _app.DisposeAsync();
        }
        foreach (var c in _certs.Values) c.Dispose();
    }
}
