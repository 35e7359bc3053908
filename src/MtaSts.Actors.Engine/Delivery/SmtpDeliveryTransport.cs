using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Dns;
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
    Func<BounceAddressTagger?>? bounceVerification = null) : IDeliveryTransport
{
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
            foreach (var address in host.Addresses)
            {
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
                    throw;
                }
                rpt?.Observe(new TlsRptAttempt(domain, policy, policyFailure, plan, tlsa, profile.EffectiveDane, host.Name, address, result,
                    conn.LocalEndPoint?.Address, DateTimeOffset.UtcNow));
                if (result.Ready)
                {
                    if (plan.GovernedBy == SecuritySource.Dane)
                    {
                        // DANE authenticated this MX: MTA-STS was not applied to it, so it must not be logged as an
                        // MTA-STS success (SPEC §3: "DANE succeeds → MTA-STS skipped").
                        log.Info("dane_success", $"DANE for the domain ({domain}) MX {host.Name} Successful.",
                            ("domain", domain), ("mx", host.Name), ("dcid", dcid));
                        if (mode != MtaStsMode.None)
                            log.Info("mtasts_skipped", $"MTA-STS policy for the domain ({domain}) skipped: DANE succeeded for MX {host.Name}.",
                                ("domain", domain), ("mx", host.Name), ("dcid", dcid));
                    }
                    else if (mode != MtaStsMode.None)
                        log.Info("mtasts_success", $"MTA-STS policy for the domain ({domain}) Successful.", ("domain", domain), ("dcid", dcid));
                    return new Session(conn, spool, domain, profile.BounceVerification ? bounceVerification : null);
                }
                lastError = result.Error ?? result.Reply?.DiagnosticText ?? "connection failed";
                lastReply = result.Reply is { IsNoReply: false } refusal ? refusal : null;
                lastStatus = result.EnhancedStatus;
                await conn.DisposeAsync().ConfigureAwait(false);
            }
        }
        var detail = SmtpReplyFormatter.NoReply(lastStatus, lastError ?? "no usable MX host",
            lastStatus.StartsWith("4.4.1") ? "No answer from any hosts listed in MX" : "Delivery not possible");
        throw new DeliveryOpenException(RecipientOutcomeKind.Transient, detail, lastStatus, lastReply);
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
    private sealed class Session(OutboundConnection conn, ISpool spool, string domain, Func<BounceAddressTagger?>? tagger) : IDeliverySession
    {
        public string Peer => conn.Peer;

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
            return new JobResult(m.Mid, outcomes, result.ConnectionUsable);
        }

        public Task CloseAsync(CancellationToken ct) => conn.CloseAsync(ct);

        public ValueTask DisposeAsync() => conn.DisposeAsync();

        public override string ToString() => $"{domain} via {conn.Peer}";
    }
}
