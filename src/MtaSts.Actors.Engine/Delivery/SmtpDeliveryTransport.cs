using System.Net;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Sites;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy;
using MtaSts.Actors.Policy.Parsing;
using MtaSts.Actors.Policy.Resolution;
using MtaSts.Actors.Smtp.Batv;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Smtp.Replies;
using MtaSts.Actors.Spool;
using MtaSts.Actors.Tls;
using MtaSts.Actors.TlsRpt;

namespace MtaSts.Actors.Engine.Delivery;

/// <summary>
/// The real transport: MX (or SMTP route) resolution, the per-MX security plan (TLS mode × DANE × MTA-STS,
/// <see cref="SecurityPlanner"/>), then an <see cref="OutboundConnection"/> to the first MX that accepts us under
/// that plan. Messages are read from the spool when sent (bodies are never held by actors). For a profile with
/// <c>bounce-verification = on</c> the envelope sender is tagged when sent (prvs, <see cref="BounceAddressTagger"/>);
/// the spool keeps the untagged address.
/// </summary>
public sealed class SmtpDeliveryTransport(
    MxResolver mx,
    IDnsResolver dns,
    ISpool spool,
    MailLog log,
    IdSequence dcids,
    Func<DestinationProfile, OutboundOptions> options,
    ITlsRptRecorder? tlsRpt = null,
    Func<BounceAddressTagger?>? bounceVerification = null,
    DeliverySiteOptions? siteOptions = null) : IDeliveryTransport, IAsyncDisposable
{
    private readonly DeliverySiteOptions _siteOptions = siteOptions ?? new DeliverySiteOptions();
    /// <summary>This node's connections per MX address and, with MX roll-up, its parked sessions.</summary>
    private readonly MxSites<SiteConnection> _sites = new();
    private ConnectionBudget? Budget => _siteOptions.Budget;

    public async Task<IDeliverySession> OpenAsync(SessionRequest request, CancellationToken ct)
    {
        var profile = request.Settings.Profile;
        var domain = request.Domain.Name;
        var resolution = profile.HasSmtpRoute
            ? await mx.ResolveRouteAsync(profile.SmtpRoute.Select(h => new HostPort(h.Host, h.Port)).ToArray(), profile.IpPreference, ct)
                .ConfigureAwait(false)
            : await mx.ResolveAsync(domain, profile.IpPreference, ct).ConfigureAwait(false);
        if (profile.HasSmtpRoute && (profile.MtaSts || profile.DaneSupport != DaneSupport.None))
            log.Debug("smtp_route", $"SMTP route for the domain ({domain}): MTA-STS and DANE are not enforced", ("domain", domain));
        if (!resolution.Ok)
        {
            var kind = resolution.Status == MxResolutionStatus.Permanent ? RecipientOutcomeKind.Permanent : RecipientOutcomeKind.Transient;
            var status = resolution.EnhancedStatus ?? (kind == RecipientOutcomeKind.Permanent ? "5.1.2" : "4.4.3");
            throw new DeliveryOpenException(kind, SmtpReplyFormatter.NoReply(status, resolution.Error, resolution.Error), status);
        }

        var (mode, policy) = MtaStsPosture(profile, domain, request.Policy);
        var outboundOptions = options(profile);
        // TLS-RPT (RFC 8460): every MX skipped and every address tried is observed; not over an SMTP route (no policy applies).
        var rpt = profile.HasSmtpRoute ? null : tlsRpt;
        var policyFailure = policy is null ? (request.Policy as PolicyResolution)?.FailureType : null;
        string? lastError = null;
        SmtpReply? lastReply = null;
        var lastStatus = "4.4.1";
        var first = true;
        foreach (var host in resolution.Hosts)
        {
            if (host.Addresses.Count == 0)
            {
                lastError = host.AddressError ?? $"no address for {host.Name}";
                continue;
            }
            var tlsa = TlsaLookup.Absent;
            if (profile.EffectiveDane != DaneSupport.None)
                tlsa = await TlsaLookup.QueryAsync(dns, host.Name, host.Port, host.Secure, ct).ConfigureAwait(false);
            var plan = SecurityPlanner.Plan(new SecurityContext(domain, host.Name, profile.TlsSupport, profile.EffectiveDane, mode,
                policy is not null && MxMatcher.MatchesAny(policy, host.Name), tlsa, profile.HasSmtpRoute));
            if (plan.Skip)
            {
                lastError = plan.SkipReason ?? $"MX {host.Name} skipped";
                lastStatus = plan.SkipStatus ?? "4.4.4";
                log.Info("mx_skipped", $"MX {host.Name} skipped for the domain ({domain}): {lastError}", ("domain", domain), ("mx", host.Name));
                rpt?.Observe(new TlsRptAttempt(domain, policy, policyFailure, plan, tlsa, profile.EffectiveDane, host.Name, null, null, null, DateTimeOffset.UtcNow));
                continue;
            }
            var mxOutsideTestingPolicy = mode == MtaStsMode.Testing && policy is not null && !MxMatcher.MatchesAny(policy, host.Name);
            foreach (var address in host.Addresses)
            {
                var key = new SiteKey(host.Name, new IPEndPoint(address, host.Port), outboundOptions.LocalAddress, outboundOptions.HeloName,
                    profile.ClientCertificate);
                var slot = (SiteSlot?)null;
                var parked = (MxSites<SiteConnection>.Parked?)null;
                var max = profile.MaxMessagesPerConnection;
                Func<MxSites<SiteConnection>.Parked, bool>? usable = _siteOptions.MxRollup
                    ? p => p.Item.Conn.MessagesSent < max && RollupCheck.Refusal(p.Item.Security, plan, mxOutsideTestingPolicy) is null
                    : null;
                while (slot is null && parked is null)
                {
                    if (usable is not null && await TryRollUpAsync(key, usable, request, ct).ConfigureAwait(false) is { } p) parked = p;
                    // limit-type = mx-ip: the profile's connection limit applies per MX address, across destinations;
                    // this waits (asynchronously, until a place frees, a usable session is parked, or the connection is
                    // cancelled) rather than trying a less preferred MX. Other profiles are only counted. With roll-up,
                    // mx-rollup-max-connections caps every profile there the same way (see AddressLimit); and
                    // while a few connections are opening at that address it waits for one of the busy sessions there to be
                    // parked instead of opening yet another (measured: without it a burst of new domains opened one
                    // connection each, ~700 TLS handshakes for 5,000 messages, and kept them until the idle time).
                    else if (await AcquireAsync(key, AddressLimit(profile, rollup: usable is not null),
                                 usable, ct, usable is null ? int.MaxValue : _siteOptions.OpeningPerAddress).ConfigureAwait(false) is { } grant)
                    {
                        slot = grant.Slot;
                        if (grant.Session is { } handed && await AliveAsync(handed, request, ct).ConfigureAwait(false)) parked = handed;
                    }
                }
                if (parked is not null)
                {
                    var kept = parked.Item;
                    var from = parked.Domain == domain ? "" : $" (rolled up from {parked.Domain})";
                    log.Info("delivery_reused", $"DCID {kept.Conn.Dcid} reused for domain {domain}{from} as DCID {request.Dcid}",
                        ("dcid", kept.Conn.Dcid), ("domain", domain), ("from_domain", parked.Domain), ("delivery_dcid", request.Dcid));
                    // A session for this domain too (RFC 8460 counts sessions per policy domain). Its report-only
                    // findings were the other domain's: the check above proved every check of this domain's plan.
                    rpt?.Observe(new TlsRptAttempt(domain, policy, policyFailure, plan, tlsa, profile.EffectiveDane, host.Name, address,
                        kept.Connected with { Reports = [] }, kept.Conn.LocalEndPoint?.Address, DateTimeOffset.UtcNow));
                    LogSecured(plan, mode, domain, host.Name, kept.Conn.Dcid);
                    return NewSession(kept, profile, domain);
                }
                var place = slot!; // the loop above ends with a session or a place of our own
                var dcid = first ? request.Dcid : dcids.Next();
                first = false;
                var conn = new OutboundConnection(new MxTarget(host.Name, address, host.Port, host.Preference), plan, outboundOptions, log, dcid);
                ConnectResult result;
                try
                {
                    result = await conn.ConnectAsync(ct).ConfigureAwait(false);
                }
                catch
                {
                    await conn.DisposeAsync().ConfigureAwait(false);
                    place.Release();
                    throw;
                }
                place.Connected(answered: result.Failure is not (ConnectFailure.Network or ConnectFailure.Timeout));
                rpt?.Observe(new TlsRptAttempt(domain, policy, policyFailure, plan, tlsa, profile.EffectiveDane, host.Name, address, result,
                    conn.LocalEndPoint?.Address, DateTimeOffset.UtcNow));
                if (result.Ready)
                {
                    LogSecured(plan, mode, domain, host.Name, dcid);
                    return NewSession(new SiteConnection(conn, place, key, result), profile, domain);
                }
                lastError = result.Error ?? result.Reply?.DiagnosticText ?? "connection failed";
                lastReply = result.Reply is { IsNoReply: false } refusal ? refusal : null;
                lastStatus = result.EnhancedStatus;
                await conn.DisposeAsync().ConfigureAwait(false);
                place.Release();
            }
        }
        var detail = SmtpReplyFormatter.NoReply(lastStatus, lastError ?? "no usable MX host",
            lastStatus.StartsWith("4.4.1") ? "No answer from any hosts listed in MX" : "Delivery not possible");
        throw new DeliveryOpenException(RecipientOutcomeKind.Transient, detail, lastStatus, lastReply);
    }

    /// <summary>Connections allowed at one MX address for this profile: its own limit under <c>limit-type = mx-ip</c>,
    /// and with roll-up the node's <c>mx-rollup-max-connections</c> (the lower of the two; int.MaxValue: only counted).</summary>
    private int AddressLimit(DestinationProfile profile, bool rollup)
    {
        var limit = profile.LimitType == LimitType.PerMxIp ? profile.MaxConcurrentConnections : int.MaxValue;
        return rollup && _siteOptions.MaxPerAddress > 0 ? Math.Min(limit, _siteOptions.MaxPerAddress) : limit;
    }

    private void LogSecured(ConnectionSecurity plan, MtaStsMode mode, string domain, string mx, long dcid)
    {
        if (plan.GovernedBy == SecuritySource.Dane)
        {
            // DANE authenticated this MX: MTA-STS was not applied to it, so it must not be logged as an
            // MTA-STS success (SPEC §3: "DANE succeeds → MTA-STS skipped").
            log.Info("dane_success", $"DANE for the domain ({domain}) MX {mx} Successful.", ("domain", domain), ("mx", mx), ("dcid", dcid));
            if (mode != MtaStsMode.None)
                log.Info("mtasts_skipped", $"MTA-STS policy for the domain ({domain}) skipped: DANE succeeded for MX {mx}.",
                    ("domain", domain), ("mx", mx), ("dcid", dcid));
        }
        else if (mode != MtaStsMode.None)
            log.Info("mtasts_success", $"MTA-STS policy for the domain ({domain}) Successful.", ("domain", domain), ("dcid", dcid));
    }

    private Session NewSession(SiteConnection site, DestinationProfile profile, string domain) =>
        new(site, spool, domain, profile.BounceVerification ? bounceVerification : null, this, profile.MaxMessagesPerConnection);

    /// <summary>MX roll-up: a parked session to this MX address that satisfies this destination's own plan and still has
    /// messages left (this profile's max-messages-per-connection). RSET proves it alive (RFC 5321 §4.1.1.5); one that
    /// fails is discarded and the next one (or a new connection) is used — the mail is not failed for it.</summary>
    private async Task<MxSites<SiteConnection>.Parked?> TryRollUpAsync(SiteKey key, Func<MxSites<SiteConnection>.Parked, bool> usable,
        SessionRequest request, CancellationToken ct)
    {
        while (_sites.TryTake(key, usable) is { } parked)
        {
            Budget?.ReturnSpare(); // out of the pool: its taker's connection holds a token of its own
            if (await AliveAsync(parked, request, ct).ConfigureAwait(false)) return parked;
        }
        return null;
    }

    /// <summary>RSET on a session taken from the pool; one that fails is discarded (its place is freed).</summary>
    private async Task<bool> AliveAsync(MxSites<SiteConnection>.Parked parked, SessionRequest request, CancellationToken ct)
    {
        bool alive;
        try
        {
            alive = await parked.Item.Conn.ResetAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await parked.Item.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        if (alive) return true;
        log.Info("delivery_reuse_failed", $"DCID {parked.Item.Conn.Dcid} discarded: RSET failed before reuse for domain {request.Domain.Name}",
            ("dcid", parked.Item.Conn.Dcid), ("domain", request.Domain.Name));
        await parked.Item.DisposeAsync().ConfigureAwait(false);
        return false;
    }

    private async Task<MxSites<SiteConnection>.Grant> AcquireAsync(SiteKey key, int limit, Func<MxSites<SiteConnection>.Parked, bool>? usable,
        CancellationToken ct, int openingLimit)
    {
        var wait = _sites.AcquireAsync(key, limit, usable, ct, out var evicted, openingLimit);
        // Parked sessions at a full address make room for the waiting connection (they are only idle).
        foreach (var site in evicted)
        {
            Budget?.ReturnSpare();
            await site.CloseAsync(CancellationToken.None).ConfigureAwait(false);
        }
        return await wait.ConfigureAwait(false);
    }

    /// <summary>Parks the session of a destination that has nothing more for it now (MX roll-up), or closes it: roll-up
    /// off, the connection gone, its messages used up, or another connection waiting for a place at that address. A
    /// parked session is closed after the connection idle time unless a destination takes it.</summary>
    private async Task ParkAsync(SiteConnection site, string domain, int maxMessages, CancellationToken ct)
    {
        var parked = new MxSites<SiteConnection>.Parked(site.Key, site, domain);
        // Straight to a connection waiting at that address first: it holds a budget token of its own, so this needs no
        // spare one (measured: while the budget was saturated by destinations waiting there, sessions were closed
        // instead of handed over and every waiting destination opened a new connection).
        if (_siteOptions.MxRollup && site.Conn.IsConnected && site.Conn.MessagesSent < maxMessages && _sites.TryHandOver(parked)) return;
        // A parked session holds a token of the node's connection budget (the parking destination's connection gives
        // its own back when it stops); none to spare — destinations wait for one — and it is closed instead.
        if (!_siteOptions.MxRollup || !site.Conn.IsConnected || site.Conn.MessagesSent >= maxMessages || Budget?.TryTakeSpare() == false)
        {
            await site.CloseAsync(ct).ConfigureAwait(false);
            return;
        }
        if (!_sites.TryPark(parked, out var handed) || handed)
        {
            Budget?.ReturnSpare(); // closed, or handed to a waiting connection that holds a token of its own
            if (!handed) await site.CloseAsync(ct).ConfigureAwait(false);
            return;
        }
        log.Debug("delivery_parked", $"DCID {site.Conn.Dcid} idle, kept for domains served by {site.Key.MxHost} (from {domain})",
            ("dcid", site.Conn.Dcid), ("domain", domain), ("mx", site.Key.MxHost));
        _ = ExpireAsync(parked);
    }

    /// <summary>Connections wait at that address for a place or a parked session (roll-up on).</summary>
    private bool Wanted(SiteKey key) => _siteOptions.MxRollup && _sites.WaitingAt(key.Mx) > 0;

    private async Task ExpireAsync(MxSites<SiteConnection>.Parked parked)
    {
        await Task.Delay(_siteOptions.IdleTime).ConfigureAwait(false);
        if (!_sites.Remove(parked)) return;
        Budget?.ReturnSpare();
        await parked.Item.CloseAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Gateway stop: QUIT every parked session.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var site in _sites.TakeAll())
        {
            Budget?.ReturnSpare();
            await site.CloseAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>The MTA-STS mode to apply (RFC 8461 §5): enforce/testing from a live or cached policy; a resolver
    /// temporary failure with nothing cached defers rather than delivering without the policy.</summary>
    private (MtaStsMode Mode, StsPolicy? Policy) MtaStsPosture(DestinationProfile profile, string domain, PolicyResolution? resolution)
    {
        if (!profile.EnforcesMtaSts) return (MtaStsMode.None, null);
        if (resolution is null)
            throw new DeliveryOpenException(RecipientOutcomeKind.Transient,
                SmtpReplyFormatter.NoReply("4.4.3", "policy resolver unavailable", $"MTA-STS policy for the domain ({domain}) could not be resolved"),
                "4.4.3");
        switch (resolution.Kind)
        {
            case PolicyResolutionKind.TempFail:
                throw new DeliveryOpenException(RecipientOutcomeKind.Transient,
                    SmtpReplyFormatter.NoReply("4.4.3", resolution.Error, $"MTA-STS TXT lookup failed for the domain ({domain})"), "4.4.3");
            case PolicyResolutionKind.Policy when resolution.Policy is { } p && p.Mode != StsMode.None:
                log.Info("mtasts_apply", $"Applying MTA-STS policy for the domain ({domain})",
                    ("domain", domain), ("mode", p.Mode.ToWireString()), ("policy_id", resolution.PolicyId));
                return (p.Mode == StsMode.Enforce ? MtaStsMode.Enforce : MtaStsMode.Testing, p);
            default:
                return (MtaStsMode.None, null);
        }
    }

    /// <param name="tagger">The bounce-verification keys in force, read per message: a kept connection sees a rotation.</param>
    private sealed class Session(SiteConnection site, ISpool spool, string domain, Func<BounceAddressTagger?>? tagger,
        SmtpDeliveryTransport owner, int maxMessages) : IDeliverySession
    {
        private readonly OutboundConnection conn = site.Conn;

        public string Peer => conn.Peer;

        public int MessagesSent => conn.MessagesSent;

        public async Task<JobResult> SendAsync(DeliveryJob job, CancellationToken ct)
        {
            var m = job.Message;
            using var body = OutboundBody.FromStream(await spool.OpenBodyAsync(m.Mid, ct).ConfigureAwait(false));
            var rcpts = job.Recipients.Select(r => new Recipient(r.Rid, r.Address, r.Notify, r.OriginalRecipient)).ToArray();
            var reversePath = tagger?.Invoke()?.Tag(m.ReversePath, DateTimeOffset.UtcNow) ?? m.ReversePath;
            var result = await conn.SendAsync(new OutboundMessage(m.Mid, reversePath, rcpts, body, m.EnvId, m.Ret, m.EightBitMime, m.SmtpUtf8), ct)
                .ConfigureAwait(false);
            var outcomes = result.Recipients.Select(r => new RecipientOutcome(
                r.Rid,
                r.Status switch
                {
                    RecipientStatus.Accepted => RecipientOutcomeKind.Delivered,
                    RecipientStatus.Permanent => RecipientOutcomeKind.Permanent,
                    _ => RecipientOutcomeKind.Transient,
                },
                r.Status == RecipientStatus.Accepted ? $"'{r.Reply.DiagnosticText}'" : r.Reply.ToString(),
                r.Reply.Enhanced?.ToString() ?? (r.Status == RecipientStatus.Accepted ? "2.0.0" : r.Status == RecipientStatus.Permanent ? "5.0.0" : "4.0.0"),
                conn.Target.Host,
                r.Reply)).ToArray();
            return new JobResult(m.Mid, outcomes, result.ConnectionUsable, owner.Wanted(site.Key));
        }

        public Task CloseAsync(CancellationToken ct) => site.CloseAsync(ct);

        public Task ParkAsync(CancellationToken ct) => owner.ParkAsync(site, domain, maxMessages, ct);

        public ValueTask DisposeAsync() => site.DisposeAsync();

        public override string ToString() => $"{domain} via {conn.Peer}";
    }
}

/// <param name="MxRollup"><c>mtasts.delivery.mx-rollup</c>: an idle session may carry other destinations' mail (see README).</param>
/// <param name="IdleTime">How long a parked session waits for a destination (the connection idle time).</param>
/// <param name="Budget">The node's outbound connection budget: a parked session holds a token (null: no limit).</param>
/// <param name="OpeningPerAddress">With roll-up: connections opening at once per MX address; a further one waits for a
/// parked session or for an opening to end (the engine's initial concurrency, Postfix initial_destination_concurrency).</param>
/// <param name="MaxPerAddress">With roll-up: connections at once per MX address over all destinations
/// (<c>mx-rollup-max-connections</c>); one more waits for a usable parked session or a place. 0: no limit.</param>
public sealed record DeliverySiteOptions(bool MxRollup = false, TimeSpan IdleTime = default, ConnectionBudget? Budget = null,
    int OpeningPerAddress = 5, int MaxPerAddress = 0);

/// <summary>An open outbound connection, its place at the MX address (released when it closes) and what it proved.</summary>
public sealed class SiteConnection(OutboundConnection conn, SiteSlot slot, SiteKey key, ConnectResult connected)
{
    public OutboundConnection Conn => conn;
    public SiteKey Key => key;
    /// <summary>The connect result (TLS-RPT observes a rolled-up session with it).</summary>
    public ConnectResult Connected => connected;
    public SessionSecurity Security { get; } = SessionSecurity.Of(conn);

    public async Task CloseAsync(CancellationToken ct)
    {
        try { await conn.CloseAsync(ct).ConfigureAwait(false); }
        finally { slot.Release(); }
    }

    public async ValueTask DisposeAsync()
    {
        try { await conn.DisposeAsync().ConfigureAwait(false); }
        finally { slot.Release(); }
    }
}
