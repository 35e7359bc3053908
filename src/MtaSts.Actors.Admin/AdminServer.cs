using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;
using Prometheus;

namespace MtaSts.Actors.Admin;

/// <summary>
/// The admin endpoint inside <c>serve</c> (ASP.NET Core on Kestrel): JSON API over the running gateway, health probes
/// for systemd/Kubernetes, Prometheus metrics. Every request except <c>/health/*</c> needs the bearer token when one is
/// configured; a non-loopback endpoint without a token is refused at load (<see cref="AdminOptions"/>). Every action
/// is logged in the operator vocabulary with the client that did it.
/// </summary>
public sealed class AdminServer : IAsyncDisposable
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(3);
    private readonly WebApplication _app;
    private readonly GatewayMetrics _metrics;

    private AdminServer(WebApplication app, GatewayMetrics metrics)
    {
        _app = app;
        _metrics = metrics;
    }

    /// <summary>The bound addresses (actual ports when port 0 was configured).</summary>
    public IReadOnlyList<Uri> Urls { get; private set; } = [];

    public static async Task<AdminServer> StartAsync(Gateway gateway, AdminOptions options, CancellationToken ct = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders(); // the operator log is the gateway's; Kestrel's console chatter is not wanted
        builder.WebHost.ConfigureKestrel(k =>
        {
            foreach (var ep in options.Endpoints) k.Listen(ep, l => l.Protocols = HttpProtocols.Http1);
            k.AddServerHeader = false;
        });
        // One JSON style for the whole API: snake_case names, enums as kebab-case strings ("required-verify").
        builder.Services.ConfigureHttpJsonOptions(j =>
        {
            j.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            j.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
        });
        builder.Services.AddHealthChecks()
            .AddCheck("spool", () => gateway.IsStopping
                ? HealthCheckResult.Unhealthy("gateway stopping: the spool is closing")
                : HealthCheckResult.Healthy($"{gateway.Spool.Count} messages"))
            .AddCheck("listener", () => gateway.IsStopping || gateway.SmtpEndpoints.Count == 0
                ? HealthCheckResult.Unhealthy("SMTP listener not accepting")
                : HealthCheckResult.Healthy(string.Join(", ", gateway.SmtpEndpoints)))
            .AddCheck("cluster", () => gateway.AdmissionRefusal is { } why
                ? HealthCheckResult.Unhealthy(why)
                : HealthCheckResult.Healthy("Up member"))
            .AddAsyncCheck("journal", async c => await gateway.ProbeJournalAsync(c).ConfigureAwait(false) is { } why
                ? HealthCheckResult.Unhealthy(why)
                : HealthCheckResult.Healthy());
        var app = builder.Build();
        var metrics = new GatewayMetrics(gateway, options.MetricsTopDestinations);
        var server = new AdminServer(app, metrics);

        if (options.Token is { } token) app.Use(RequireToken(token));
        Map(app, gateway, metrics);
        await app.StartAsync(ct).ConfigureAwait(false);
        server.Urls = app.Urls.Select(u => new Uri(u)).ToArray();
        gateway.Log.Info("admin_listen", $"Admin endpoint on {string.Join(", ", server.Urls)}" + (options.Token is null ? " (loopback, no token)" : " (bearer token)"),
            ("urls", server.Urls.Select(u => u.ToString()).ToArray()));
        return server;
    }

    private static Func<HttpContext, RequestDelegate, Task> RequireToken(string token)
    {
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        return (ctx, next) =>
        {
            if (ctx.Request.Path.StartsWithSegments("/health") || ctx.Request.Path == "/") return next(ctx);
            var header = ctx.Request.Headers.Authorization.ToString();
            var given = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : "";
            if (CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), expected)) return next(ctx);
            ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            return ctx.Response.WriteAsJsonAsync(new { error = "a valid bearer token is required" });
        };
    }

    private static readonly Lazy<string> Page = new(() =>
    {
        using var s = typeof(AdminServer).Assembly.GetManifestResourceStream("MtaSts.Actors.Admin.Ui.index.html")
            ?? throw new InvalidOperationException("status page resource missing");
        return new StreamReader(s).ReadToEnd();
    });

    private static string Who(HttpContext ctx) => ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown";

    private static void Map(WebApplication app, Gateway gw, GatewayMetrics metrics)
    {
        // ---- health (no token: probes of systemd/Kubernetes) ----
        app.MapGet("/health/live", () => gw.System.WhenTerminated.IsCompleted
            ? Results.Json(new { status = "dead", reason = "actor system terminated" }, statusCode: 503)
            : Results.Json(new { status = "live" }));
        app.MapGet("/health/ready", async (HealthCheckService checks, CancellationToken ct) =>
        {
            var report = await checks.CheckHealthAsync(ct).ConfigureAwait(false);
            var body = new
            {
                status = report.Status == HealthStatus.Healthy ? "ready" : "not ready",
                checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString().ToLowerInvariant(), detail = e.Value.Description }),
            };
            return Results.Json(body, statusCode: report.Status == HealthStatus.Healthy ? 200 : 503);
        });

        // ---- the status page (static; its data calls carry the token) ----
        app.MapGet("/", () => Results.Content(Page.Value, "text/html; charset=utf-8"));
        app.MapGet("/api/stats", () => Results.Json(metrics.Totals()));

        // ---- metrics ----
        app.MapGet("/metrics", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await metrics.Registry.CollectAndExportAsTextAsync(ctx.Response.Body, ctx.RequestAborted).ConfigureAwait(false);
        });

        // ---- read ----
        app.MapGet("/api/queue", async (int? limit) =>
        {
            var now = DateTimeOffset.UtcNow;
            var rows = QueueView.Summaries(gw.Pending, now).OrderByDescending(q => q.Recipients).Take(Math.Clamp(limit ?? 100, 1, 10_000)).ToArray();
            var statuses = await Task.WhenAll(rows.Select(r => StatusAsync(gw, r.Domain))).ConfigureAwait(false);
            return Results.Json(new
            {
                destinations = rows.Zip(statuses, (q, st) => Row(gw, q, st)).ToArray(),
                total = new
                {
                    destinations = gw.Pending.Domains.Count(), recipients = rows.Sum(r => r.Recipients), spool_messages = gw.Spool.Count,
                    recipients_by_age = QueueView.ByAgeJson(Enumerable.Range(0, QueueView.AgeBuckets.Count).Select(i => rows.Sum(r => r.RecipientsByAge[i])).ToArray()),
                },
            });
        });
        app.MapGet("/api/queue/{domain}", async (string domain, int? offset, int? limit) =>
        {
            var d = Normalize(domain);
            var summary = QueueView.Summaries(gw.Pending, DateTimeOffset.UtcNow).FirstOrDefault(q => q.Domain == d);
            var status = await StatusAsync(gw, d).ConfigureAwait(false);
            return Results.Json(new
            {
                destination = summary is null ? null : Row(gw, summary, status),
                status,
                messages = QueueView.Page(gw.Pending, d, Math.Max(0, offset ?? 0), Math.Clamp(limit ?? 50, 1, 1000)),
            });
        });
        app.MapGet("/api/messages/{mid:long}", (long mid) =>
            QueueView.Message(gw.Pending, mid) is { } m ? Results.Json(m) : Results.NotFound(new { error = $"MID {mid} is not queued on this node" }));
        app.MapGet("/api/policies", () => Results.Json(gw.PolicyCache.Snapshot().OrderBy(p => p.Domain).Select(PolicyJson).ToArray()));
        app.MapGet("/api/policies/{domain}", (string domain) =>
            gw.PolicyCache.Get(Normalize(domain)) is { } p ? Results.Json(PolicyJson(p)) : Results.NotFound(new { error = $"no cached MTA-STS policy for {domain}" }));
        app.MapGet("/api/profiles/{domain}", (string domain) => Results.Json(gw.Destinations.Profiles.Resolve(Normalize(domain))));

        // ---- act ----
        app.MapPost("/api/deliver-now", async (string? domain, HttpContext ctx) =>
        {
            gw.Log.Info("admin_action", $"Admin deliver now {(domain is null ? "all destinations" : "destination " + Normalize(domain))} by {Who(ctx)}",
                ("action", "deliver_now"), ("domain", domain), ("by", Who(ctx)));
            return Results.Json(new { destinations = await gw.DeliverNowAsync(domain, ctx.RequestAborted) });
        });
        app.MapDelete("/api/policies/{domain}", (string domain, HttpContext ctx) =>
        {
            var d = Normalize(domain);
            bool removed = gw.PolicyCache.Remove(d);
            gw.Log.Info("admin_action", $"Admin purge MTA-STS policy for the domain ({d}) by {Who(ctx)}: {(removed ? "removed" : "none cached")}",
                ("action", "policy_purge"), ("domain", d), ("by", Who(ctx)), ("removed", removed));
            return removed ? Results.Json(new { removed = d }) : Results.NotFound(new { error = $"no cached MTA-STS policy for {d}" });
        });
    }

    /// <summary>The API's domain key: the same normalised form as everywhere (IDNA A-labels, lower case, no trailing dot).</summary>
    private static string Normalize(string domain) => DestinationDomain.KeyOf(domain);

    private static object PolicyJson(MtaSts.Actors.Policy.Cache.CachedPolicy p) => new
    {
        domain = p.Domain, id = p.PolicyId, mode = p.Policy.Mode.ToString().ToLowerInvariant(),
        mx = p.Policy.Mx.Select(m => m.ToString()).ToArray(),
        max_age = (long)p.MaxAge.TotalSeconds, fetched_at = p.FetchedAt, expires_at = p.ExpiresAt,
    };

    private static object Row(Gateway gw, QueueSummary q, DestinationStatus? st)
    {
        var profile = gw.Destinations.Profiles.Resolve(q.Domain);
        var policy = gw.PolicyCache.Get(q.Domain);
        return new
        {
            domain = q.Domain, messages = q.Messages, recipients = q.Recipients,
            deferred = st?.DeferredRecipients, in_flight_connections = st?.ActiveConnections,
            max_connections = st?.MaxConnections ?? profile.MaxConcurrentConnections,
            oldest = q.Oldest, oldest_age_seconds = (long)q.OldestAge.TotalSeconds,
            recipients_by_age = QueueView.ByAgeJson(q.RecipientsByAge),
            next_attempt = st?.NextAttempt, last_error = st?.LastError,
            mta_sts = profile.MtaSts, policy_id = policy?.PolicyId,
            policy_mode = policy?.Policy.Mode.ToString().ToLowerInvariant(),
            tls = profile.TlsSupport, dane = profile.DaneSupport,
            status_known = st is not null,
        };
    }

    /// <summary>Asks the destination entity; null when it does not answer in time (it may be busy or restarting).</summary>
    private static async Task<DestinationStatus?> StatusAsync(Gateway gw, string domain)
    {
        if (!DestinationDomain.TryParse(domain, out var d, out _)) return null;
        try { return await gw.Region.Ask<DestinationStatus>(new GetDestinationStatus(d), AskTimeout).ConfigureAwait(false); }
        catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException) { return null; }
    }

    public async ValueTask DisposeAsync()
    {
        _metrics.Dispose();
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
