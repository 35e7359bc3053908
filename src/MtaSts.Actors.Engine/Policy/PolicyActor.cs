using Akka.Actor;
using Akka.Pattern;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy.Resolution;

namespace MtaSts.Actors.Engine.Policy;

/// <summary>Ask a policy for a domain. The answer is always a <see cref="PolicyResolved"/>.</summary>
public sealed record ResolvePolicy(DestinationDomain Domain);

/// <summary>Operator "policy refresh": fetch the domain's policy now (cache and negative cache bypassed). The answer is a
/// <see cref="PolicyResolved"/>.</summary>
public sealed record RefreshPolicy(DestinationDomain Domain);

/// <param name="Resolution">null when the resolver failed or its breaker is open (the destination defers).</param>
public sealed record PolicyResolved(DestinationDomain Domain, PolicyResolution? Resolution, string? Failed = null);

/// <summary>What a destination remembers of its last policy answer.</summary>
public sealed record PolicyState(PolicyResolution? Resolution, DateTimeOffset? ResolvedAt, bool Pending, string? Failed)
{
    public static PolicyState None { get; } = new(null, null, false, null);

    /// <summary>A policy (any mode) that has not reached its max_age yet (RFC 8461 §3.2): it stays in force while
    /// it is re-checked, and when a re-check gets no answer (§3.3).</summary>
    public bool HasValidPolicy(DateTimeOffset now) => Resolution is { Policy: not null, ExpiresAt: { } expires } && expires > now;

    /// <summary>Whether delivery may go now and whether to ask the resolver. A policy that is still valid (RFC 8461 §3.2
    /// max_age) keeps applying while it is re-checked: the periodic TXT re-check must not stall delivery. Without one
    /// ("no policy", a failed fetch) delivery waits for the answer, since the domain may just have published a policy and
    /// sending meanwhile would be a downgrade. An answer younger than <paramref name="reuse"/>, or one pending, is not
    /// asked again.</summary>
    public (bool Ready, bool Ask) Readiness(DateTimeOffset now, TimeSpan reuse)
    {
        var fresh = ResolvedAt is { } at && now - at < reuse;
        var stillValid = HasValidPolicy(now);
        return fresh || Pending ? (fresh || stillValid, false) : (stillValid, true);
    }

    /// <summary>The state after an answer: a missing answer keeps a still-valid policy instead of dropping to "no policy".</summary>
    public PolicyState Answered(PolicyResolution? resolution, string? failed, DateTimeOffset now) =>
        this with { Resolution = resolution is null && HasValidPolicy(now) ? Resolution : resolution, ResolvedAt = now, Pending = false, Failed = failed };
}

/// <summary>
/// Resolves MTA-STS policies apart from delivery (own supervisor, see <see cref="PolicySupervision"/>). The resolver
/// is async and single-flight per domain; this actor adds a circuit breaker per proxy (or for direct fetches) against
/// a resolver that throws or hangs beyond its own timeouts, and it never blocks: results are piped back to the asking
/// destination, which defers (and retries) when it waited longer than <c>EngineTuning.PolicyTimeout</c>.
/// </summary>
public sealed class PolicyActor : ReceiveActor
{
    private readonly PolicyResolver _resolver;
    private readonly Func<string, PolicyResolveOptions> _options;
    private readonly MailLog _log;
    private readonly Dictionary<string, CircuitBreaker> _breakers = new();

    public PolicyActor(PolicyResolver resolver, Func<string, PolicyResolveOptions> options, MailLog log)
    {
        _resolver = resolver;
        _options = options;
        _log = log;
        Receive<ResolvePolicy>(Resolve);
        Receive<RefreshPolicy>(Refresh);
    }

    public static Props Props(PolicyResolver resolver, Func<string, PolicyResolveOptions> options, MailLog log) =>
        Akka.Actor.Props.Create(() => new PolicyActor(resolver, options, log));

    private void Resolve(ResolvePolicy r)
    {
        var sender = Sender;
        var options = _options(r.Domain.Name);
        var breaker = Breaker(options.Proxy?.ToString() ?? "direct");
        var log = _log;
        breaker.WithCircuitBreaker(ct => ResolveAndCheck(r.Domain, options, ct))
            .PipeTo(sender,
                success: res => new PolicyResolved(r.Domain, res),
                failure: ex =>
                {
                    var why = ex is OpenCircuitException ? "policy fetch path is failing (circuit open)" : ex.Message;
                    log.Info("mtasts_policy_failure", $"Failure encountered while fetching MTA-STS policy for the domain({r.Domain})",
                        ("domain", r.Domain.Name), ("reason", why));
                    return new PolicyResolved(r.Domain, null, why);
                });
    }

    private void Refresh(RefreshPolicy r)
    {
        var options = _options(r.Domain.Name);
        Breaker(options.Proxy?.ToString() ?? "direct")
            .WithCircuitBreaker(ct => _resolver.RefreshAsync(r.Domain, options, ct))
            .PipeTo(Sender,
                success: res => new PolicyResolved(r.Domain, res),
                failure: ex => new PolicyResolved(r.Domain, null, ex is OpenCircuitException ? "policy fetch path is failing (circuit open)" : ex.Message));
    }

    /// <summary>Only a resolution that throws or outlives the breaker's call timeout counts as a breaker failure. A
    /// fetch-path failure (hung proxy, policy host down) comes back as a result and does not trip the breaker on
    /// purpose: an open breaker answers "unresolved" for every domain behind the proxy, which would defer domains
    /// that only need their TXT lookup or hold a valid cached policy (RFC 8461 §3.3 says apply it). The resolver's
    /// negative cache per (domain, id) already limits a hung proxy to one bounded wait per domain and policy id.</summary>
    private async Task<PolicyResolution> ResolveAndCheck(DestinationDomain domain, PolicyResolveOptions options, CancellationToken ct)
    {
        var res = await _resolver.ResolveAsync(domain, options, ct).ConfigureAwait(false);
        return res;
    }

    private CircuitBreaker Breaker(string key)
    {
        if (_breakers.TryGetValue(key, out var b)) return b;
        b = new CircuitBreaker(Context.System.Scheduler, maxFailures: 5, callTimeout: TimeSpan.FromSeconds(120),
                resetTimeout: TimeSpan.FromSeconds(30))
            .WithExponentialBackoff(TimeSpan.FromMinutes(5));
        _breakers[key] = b;
        return b;
    }
}

/// <summary>The policy branch of the supervisor tree: restarts the resolver actor with backoff, apart from delivery.</summary>
public static class PolicySupervision
{
    public static Props Props(Props child) =>
        BackoffSupervisor.Props(
            BackoffOptionsImpl(child));

    private static BackoffOptions BackoffOptionsImpl(Props child) =>
        Backoff.OnFailure(child, "resolver", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, -1)
            .WithAutoReset(TimeSpan.FromMinutes(1));
}
