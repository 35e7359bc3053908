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
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Dns;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Engine.Policy;
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
    private readonly GatewayMetrics? _metrics;

    private AdminServer(WebApplication app, GatewayMetrics? metrics)
    {
        _app = app;
        _metrics = metrics;
    }

    /// <summary>The bound addresses (actual ports when port 0 was configured).</summary>
    public IReadOnlyList<Uri> Urls { get; private set; } = [];

    public static async Task<AdminServer> StartAsync(Gateway gateway, AdminOptions options, CancellationToken ct = default)
    {
        // An empty builder: the admin endpoint is configured by the gateway's settings only — the slim builder also read
        // appsettings*.json from the working directory (the data dir under systemd) and ASPNETCORE_/DOTNET_ variables,
        // a second configuration surface nobody documents (Kestrel endpoints, logging) and a reload-on-change source.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        // serve owns the signals: a SIGTERM while Kestrel binds must not fail the start (crash test: unhandled
        // TaskCanceledException, exit 134, instead of a graceful stop).
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
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
        // mtasts.admin.metrics = off: no collector and no observer on the operator log, so nothing is recorded per event.
        var metrics = options.Metrics ? new GatewayMetrics(gateway, options.MetricsTopDestinations) : null;
        var server = new AdminServer(app, metrics);

        if (options.RequiresToken) app.Use(RequireToken(options));
        Map(app, gateway, metrics);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false); // the metrics' probe thread and log observer with it
            throw;
        }
        server.Urls = app.Urls.Select(u => new Uri(u)).ToArray();
        gateway.Log.Info("admin_listen", $"Admin endpoint on {string.Join(", ", server.Urls)}" + (!options.RequiresToken ? " (loopback, no token)"
                : $" (bearer token{(options.Tokens.Count > 0 ? $"; named: {string.Join(", ", options.Tokens)}" : "")})")
                + (options.Metrics ? "" : "; metrics off (mtasts.admin.metrics)"),
            ("urls", server.Urls.Select(u => u.ToString()).ToArray()));
        return server;
    }

    private const string WhoItem = "mtasts.admin.who";

    private static Func<HttpContext, RequestDelegate, Task> RequireToken(AdminOptions options)
    {
        // Every configured token, hashed (fixed-time comparison of equal-length digests), with the label the operator
        // log shows for an action done with it.
        var accepted = new List<(byte[] Hash, string Label)>();
        if (options.Token is { } main) accepted.Add((SHA256.HashData(Encoding.UTF8.GetBytes(main)), "admin token"));
        foreach (var t in options.Tokens) accepted.Add((SHA256.HashData(Encoding.UTF8.GetBytes(t.Token)), $"admin token \"{t.Name}\""));
        return (ctx, next) =>
        {
            if (ctx.Request.Path.StartsWithSegments("/health") || ctx.Request.Path == "/") return next(ctx);
            var header = ctx.Request.Headers.Authorization.ToString();
            var given = SHA256.HashData(Encoding.UTF8.GetBytes(header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : ""));
            string? label = null;
            foreach (var (hash, l) in accepted)
                if (CryptographicOperations.FixedTimeEquals(given, hash)) label ??= l;
            if (label is not null)
            {
                ctx.Items[WhoItem] = label;
                return next(ctx);
            }
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

    /// <summary>Who did an action, for the operator log: the token's label ("admin token", or a named token's name)
    /// and the client address — <c>admin token from 127.0.0.1</c>, <c>admin token "alice" from 10.0.0.7</c>,
    /// <c>loopback client without token from 127.0.0.1</c> when no token is configured.</summary>
    private static string Who(HttpContext ctx)
    {
        var ip = ctx.Connection.RemoteIpAddress is { } a ? (a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).ToString() : "unknown";
        return $"{ctx.Items[WhoItem] as string ?? "loopback client without token"} from {ip}";
    }

    /// <summary>One operator-log line per action: <c>Operator action: WHAT by WHO[: RESULT]</c>.</summary>
    private static void Operator(Gateway gw, HttpContext ctx, string action, string what, string? result, params (string Key, object? Value)[] fields) =>
        gw.Log.Info("operator_action", $"Operator action: {what} by {Who(ctx)}" + (result is null ? "" : $": {result}"),
            [("action", action), ("by", Who(ctx)), .. fields]);

    private static void Map(WebApplication app, Gateway gw, GatewayMetrics? metrics)
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
        app.MapGet("/api/stats", () => Results.Json(metrics?.Totals() ?? GatewayMetrics.TotalsWithoutMetrics(gw)));

        // ---- metrics ----
        app.MapGet("/metrics", async (HttpContext ctx) =>
        {
            if (metrics is null)
            {
                ctx.Response.StatusCode = StatusCodes.Status404NotFound;
                await ctx.Response.WriteAsJsonAsync(new { error = "metrics are off on this gateway (mtasts.admin.metrics = off)" }, ctx.RequestAborted).ConfigureAwait(false);
                return;
            }
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
                messages = await QueueView.PageAsync(gw.Pending, gw.Spool, d, Math.Max(0, offset ?? 0), Math.Clamp(limit ?? 50, 1, 1000)).ConfigureAwait(false),
            });
        });
        app.MapGet("/api/messages/{mid:long}", async (long mid) =>
            await QueueView.MessageAsync(gw.Pending, gw.Spool, mid).ConfigureAwait(false) is { } m
                ? Results.Json(m) : Results.NotFound(new { error = $"MID {mid} is not queued on this node" }));
        app.MapGet("/api/policies", () => Results.Json(gw.PolicyCache.Snapshot().OrderBy(p => p.Domain).Select(PolicyJson).ToArray()));
        app.MapGet("/api/policies/{domain}", (string domain) =>
            gw.PolicyCache.Get(Normalize(domain)) is { } p ? Results.Json(PolicyJson(p)) : Results.NotFound(new { error = $"no cached MTA-STS policy for {domain}" }));
        app.MapGet("/api/profiles/{domain}", (string domain) => Results.Json(gw.Destinations.Profiles.Resolve(Normalize(domain))));
        app.MapGet("/api/cluster", () => Results.Json(ClusterView.Of(gw)));

        // ---- act ----
        app.MapPost("/api/deliver-now", async (string? domain, HttpContext ctx) =>
        {
            var n = await gw.DeliverNowAsync(domain, ctx.RequestAborted);
            Operator(gw, ctx, "deliver_now", $"deliver now {(domain is null ? "all destinations" : "destination " + Normalize(domain))}",
                $"{n} destinations retried", ("domain", domain is null ? null : Normalize(domain)));
            return Results.Json(new { destinations = n });
        });
        app.MapDelete("/api/policies/{domain}", (string domain, HttpContext ctx) =>
        {
            var d = Normalize(domain);
            bool removed = gw.PolicyCache.Remove(d);
            Operator(gw, ctx, "policy_purge", $"purge MTA-STS policy for the domain ({d})", removed ? "removed" : "none cached",
                ("domain", d), ("removed", removed));
            return removed ? Results.Json(new { removed = d }) : Results.NotFound(new { error = $"no cached MTA-STS policy for {d}" });
        });
        app.MapPost("/api/policies/{domain}/refresh", async (string domain, HttpContext ctx) =>
        {
            if (!DestinationDomain.TryParse(domain, out var d, out var why)) return BadDomain(domain, why);
            PolicyResolved answer;
            try
            {
                answer = await gw.PolicyBranchSelection.Ask<PolicyResolved>(new RefreshPolicy(d), PolicyTimeout).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
            {
                Operator(gw, ctx, "policy_refresh", $"refresh MTA-STS policy for the domain ({d})", "no answer in time", ("domain", d.Name));
                return Results.Json(new { error = $"the policy fetch for {d} did not finish within {PolicyTimeout.TotalSeconds:0} s" }, statusCode: 504);
            }
            var r = answer.Resolution;
            var result = r is null ? $"failed: {answer.Failed}"
                : r.HasPolicy ? $"policy id {r.PolicyId} mode {r.Policy!.Mode.ToString().ToLowerInvariant()} ({Kebab(r.Source)})"
                : $"{Kebab(r.Kind)}: {r.Error}";
            Operator(gw, ctx, "policy_refresh", $"refresh MTA-STS policy for the domain ({d})", result, ("domain", d.Name));
            return Results.Json(new
            {
                domain = d.Name,
                result = r is null ? "failed" : Kebab(r.Kind),
                source = r is null ? null : Kebab(r.Source),
                policy = r?.HasPolicy == true && gw.PolicyCache.Get(d.Name) is { } cached && cached.PolicyId == r.PolicyId ? PolicyJson(cached) : null,
                id = r?.PolicyId,
                mode = r?.HasPolicy == true ? r.Policy!.Mode.ToString().ToLowerInvariant() : null,
                expires_at = r?.ExpiresAt,
                failure_type = r?.FailureType?.ToString(),
                error = r is null ? answer.Failed : r.Error,
            });
        });

        // ---- suspend / resume (journaled by the destination: survives a restart) ----
        app.MapPost("/api/destinations/{domain}/suspend", (string domain, HttpContext ctx) => Suspension(gw, ctx, domain, suspend: true));
        app.MapPost("/api/destinations/{domain}/resume", (string domain, HttpContext ctx) => Suspension(gw, ctx, domain, suspend: false));

        // ---- bounce / delete ----
        app.MapPost("/api/destinations/{domain}/bounce", (string domain, HttpContext ctx) => RemoveDomain(gw, ctx, domain, bounce: true));
        app.MapDelete("/api/destinations/{domain}/queue", (string domain, HttpContext ctx) => RemoveDomain(gw, ctx, domain, bounce: false));
        app.MapPost("/api/messages/{mid:long}/bounce", (long mid, HttpContext ctx) => RemoveMessage(gw, ctx, mid, bounce: true));
        app.MapDelete("/api/messages/{mid:long}", (long mid, HttpContext ctx) => RemoveMessage(gw, ctx, mid, bounce: false));

        // ---- destconfig export / import ----
        app.MapGet("/api/destconfig", () => Results.Text(DestinationConfigWriter.Write(gw.Destinations, ExportHeader(gw)), "text/plain; charset=utf-8"));
        app.MapPut("/api/destconfig", async (HttpContext ctx, bool? dry_run) =>
        {
            using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
            var text = await reader.ReadToEndAsync(ctx.RequestAborted).ConfigureAwait(false);
            return ImportDestConfig(gw, ctx, text, dry_run ?? false);
        });
    }

    private static readonly TimeSpan ActionTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan PolicyTimeout = TimeSpan.FromSeconds(120);

    private static IResult BadDomain(string domain, string why) => Results.BadRequest(new { error = $"'{domain}' is not a destination domain: {why}" });

    private static IResult NoAnswer(DestinationDomain d) => Results.Json(new
    {
        error = $"destination {d} did not answer within {ActionTimeout.TotalSeconds:0} s (busy or restarting); the action may still take effect — check GET /api/queue/{d}",
    }, statusCode: 503);

    private static string Kebab<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    private static async Task<IResult> Suspension(Gateway gw, HttpContext ctx, string domain, bool suspend)
    {
        if (!DestinationDomain.TryParse(domain, out var d, out var why)) return BadDomain(domain, why);
        var by = Who(ctx);
        DestinationStatus st;
        try
        {
            st = await gw.Region.Ask<DestinationStatus>(suspend ? new SuspendDelivery(d, by) : new ResumeDelivery(d, by), ActionTimeout).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
        {
            return NoAnswer(d);
        }
        Operator(gw, ctx, suspend ? "suspend" : "resume", $"{(suspend ? "suspend" : "resume")} destination {d}",
            st.Suspended ? $"suspended since {st.SuspendedSince:yyyy-MM-dd HH:mm:ss}Z by {st.SuspendedBy}, {st.QueuedRecipients} recipients queued"
                : $"delivering, {st.QueuedRecipients} recipients queued",
            ("domain", d.Name), ("suspended", st.Suspended));
        return Results.Json(st);
    }

    private static async Task<IResult> RemoveDomain(Gateway gw, HttpContext ctx, string domain, bool bounce)
    {
        if (!DestinationDomain.TryParse(domain, out var d, out var why)) return BadDomain(domain, why);
        QueueRemoved removed;
        try
        {
            removed = await gw.Region.Ask<QueueRemoved>(new RemoveQueued(d, null, bounce, Who(ctx)), ActionTimeout).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
        {
            return NoAnswer(d);
        }
        Operator(gw, ctx, bounce ? "bounce_destination" : "delete_destination",
            $"{(bounce ? "bounce" : "delete")} the queue of destination {d}", RemovedText(removed, bounce), ("domain", d.Name),
            ("messages", removed.Messages), ("recipients", removed.Recipients), ("in_flight", removed.InFlight));
        return Results.Json(RemovedJson([removed], bounce));
    }

    private static async Task<IResult> RemoveMessage(Gateway gw, HttpContext ctx, long mid, bool bounce)
    {
        // The message's destinations on this node (a message to several domains is queued at each of them).
        var domains = (await QueueView.MessageAsync(gw.Pending, gw.Spool, mid).ConfigureAwait(false))?.Recipients.Select(r => r.Domain).Distinct().ToArray() ?? [];
        if (domains.Length == 0) return Results.NotFound(new { error = $"MID {mid} is not queued on this node" });
        var answers = new List<QueueRemoved>();
        foreach (var domain in domains)
        {
            var d = DestinationDomain.Parse(domain);
            try
            {
                answers.Add(await gw.Region.Ask<QueueRemoved>(new RemoveQueued(d, mid, bounce, Who(ctx)), ActionTimeout).ConfigureAwait(false));
            }
            catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
            {
                return NoAnswer(d);
            }
        }
        var total = new QueueRemoved(answers[0].Domain, answers.Max(a => a.Messages), answers.Sum(a => a.Recipients), answers.Sum(a => a.InFlight));
        Operator(gw, ctx, bounce ? "bounce_message" : "delete_message", $"{(bounce ? "bounce" : "delete")} MID {mid}",
            RemovedText(total, bounce) + $" (destinations {string.Join(", ", domains)})", ("mid", mid), ("recipients", total.Recipients),
            ("in_flight", total.InFlight));
        return Results.Json(RemovedJson(answers, bounce, mid));
    }

    private static string RemovedText(QueueRemoved r, bool bounce) =>
        $"{r.Recipients} recipients of {r.Messages} messages {(bounce ? "bounced (DSN to the sender)" : "deleted (no DSN)")}"
        + (r.InFlight > 0 ? $", {r.InFlight} in a transaction left alone" : "");

    private static object RemovedJson(IReadOnlyList<QueueRemoved> answers, bool bounce, long? mid = null) => new
    {
        action = bounce ? "bounce" : "delete",
        mid,
        messages = mid is null ? answers.Sum(a => a.Messages) : answers.Max(a => a.Messages),
        recipients = answers.Sum(a => a.Recipients),
        in_flight = answers.Sum(a => a.InFlight),
        destinations = answers.Select(a => new { domain = a.Domain.Name, messages = a.Messages, recipients = a.Recipients, in_flight = a.InFlight }).ToArray(),
    };

    private static string ExportHeader(Gateway gw)
    {
        var c = gw.Configuration;
        return $"""
            destconfig export of gateway {c.Hostname} at {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm:ss}Z: the effective destination and bounce profiles,
            every setting spelled out ({(c.DestConfigImported ? "from " + c.DestConfigFile : "from " + string.Join(", ", c.Files.Select(Path.GetFileName)))}).
            Install with `mtasts-gateway destconfig import FILE`: it replaces mtasts.destinations and mtasts.bounce-profiles.
            """;
    }

    private static IResult ImportDestConfig(Gateway gw, HttpContext ctx, string text, bool dryRun)
    {
        var result = DestConfigFile.Validate(text);
        if (!result.IsValid)
        {
            Operator(gw, ctx, "destconfig_import", $"destconfig import{(dryRun ? " (dry run)" : "")}", $"refused, {result.Errors.Count} errors",
                ("errors", result.Errors.ToArray()));
            return Results.BadRequest(new { error = string.Join("\n", result.Errors), errors = result.Errors });
        }
        var fresh = result.Config!;
        var before = gw.Destinations;
        string Key(DestinationProfile p) => p.Destination;
        var old = before.Profiles.Profiles.Prepend(before.Profiles.Default).DistinctBy(Key).ToDictionary(Key);
        var @new = fresh.Profiles.Profiles.Prepend(fresh.Profiles.Default).DistinctBy(Key).ToDictionary(Key);
        var changes = new
        {
            added = @new.Keys.Except(old.Keys).Order(StringComparer.Ordinal).ToArray(),
            removed = old.Keys.Except(@new.Keys).Order(StringComparer.Ordinal).ToArray(),
            changed = @new.Keys.Intersect(old.Keys).Where(k => !Equals(old[k], @new[k])).Order(StringComparer.Ordinal).ToArray(),
            bounce_profiles_added = fresh.BounceProfiles.Keys.Except(before.BounceProfiles.Keys).Order(StringComparer.Ordinal).ToArray(),
            bounce_profiles_removed = before.BounceProfiles.Keys.Except(fresh.BounceProfiles.Keys).Order(StringComparer.Ordinal).ToArray(),
            bounce_profiles_changed = fresh.BounceProfiles.Keys.Intersect(before.BounceProfiles.Keys)
                .Where(k => !Equals(fresh.BounceProfiles[k], before.BounceProfiles[k])).Order(StringComparer.Ordinal).ToArray(),
        };
        var summary = $"{@new.Count} destination profiles, {fresh.BounceProfiles.Count} bounce profiles; added [{string.Join(", ", changes.added)}], " +
                      $"removed [{string.Join(", ", changes.removed)}], changed [{string.Join(", ", changes.changed)}]";
        if (dryRun)
        {
            Operator(gw, ctx, "destconfig_import", "destconfig import (dry run)", "valid, nothing applied: " + summary);
            return Results.Json(new { valid = true, applied = false, file = gw.Configuration.DestConfigFile, changes });
        }
        if (gw.Configuration.DestConfigFile is not { } target)
            return Results.Json(new { error = "this gateway has no destconfig file location (configuration built in code)" }, statusCode: 409);
        // Atomic install: a complete file or the previous one, never half a file for the watcher to read.
        var temp = target + ".tmp-" + Guid.NewGuid().ToString("N");
        File.WriteAllText(temp, text);
        File.Move(temp, target, overwrite: true);
        gw.ReloadConfiguration();
        var inForce = DestinationConfigWriter.Write(gw.Destinations) == DestinationConfigWriter.Write(fresh);
        Operator(gw, ctx, "destconfig_import", $"destconfig import into {target}", (inForce ? "applied: " : "installed but not in force (see config_reload_failed): ") + summary);
        if (!inForce)
            return Results.Json(new
            {
                error = $"installed as {target} but the configuration reload failed (another configuration file is invalid now?); " +
                        "the previous destination profiles stay in force — see the config_reload_failed line in the log",
            }, statusCode: 409);
        return Results.Json(new { valid = true, applied = true, file = target, changes });
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
            tls = profile.TlsSupport, dane = profile.DaneSupport, bounce_verification = profile.BounceVerification,
            suspended = st?.Suspended, suspended_since = st?.SuspendedSince, suspended_by = st?.SuspendedBy,
            throttle = st?.Throttle, // a reply-driven throttle in force (rule, reply, limits, hold_until, ramping)
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
        _metrics?.Dispose();
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
