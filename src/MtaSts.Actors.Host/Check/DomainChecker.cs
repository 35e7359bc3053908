using System.Collections.Concurrent;
using System.Net;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.Policy.Parsing;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Host.Check;

/// <summary>Settings of one check (the command line of <c>mtasts-gateway check</c>).</summary>
public sealed record CheckOptions
{
    /// <summary>The recipient domain, lower-case A-label form without a trailing dot.</summary>
    public required string Domain { get; init; }
    /// <summary>HTTP proxy for the policy fetch (CONNECT), as the gateway's destination profile would use it.</summary>
    public Uri? Proxy { get; init; }
    /// <summary>Resolver to ask; null = the system's (/etc/resolv.conf).</summary>
    public IPEndPoint? DnsServer { get; init; }
    /// <summary>Extra trusted CA (PEM) for the policy host and the MX certificates, on top of the system roots.</summary>
    public string? CaBundlePath { get; init; }
    public int PolicyPort { get; init; } = 443;
    public int SmtpPort { get; init; } = 25;
    /// <summary>Connect here instead of the MX hosts' addresses; the MX names still give SNI and the name checks.</summary>
    public IPEndPoint? MxOverride { get; init; }
    /// <summary>Bound of each network step: DNS query try (at most 5 s), policy host connect (the whole fetch: twice
    /// this), each SMTP conversation.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
    public bool LenientContentType { get; init; }
    public string HeloName { get; init; } = DefaultHeloName();
    /// <summary>Addresses tried per MX host until one answers.</summary>
    public int MaxAddressesPerHost { get; init; } = 4;

    private static string DefaultHeloName()
    {
        try
        {
            var name = System.Net.Dns.GetHostName();
            return string.IsNullOrWhiteSpace(name) ? "localhost" : name;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return "localhost";
        }
    }
}

/// <summary>
/// The MTA-STS checker: TXT <c>_mta-sts.&lt;domain&gt;</c>, policy fetch (and the policy host's certificate), MX
/// lookup, which MX hosts the policy covers, and for each MX host a real SMTP conversation (EHLO, STARTTLS, TLS version,
/// cipher, certificate chain and RFC 6125 name match). Produces a <see cref="CheckReport"/> with a verdict:
/// deliverable under the domain's policy or not. Built on the gateway's own resolver, fetcher, MX resolver and verifier,
/// so that it judges a domain the way a delivery would.
/// </summary>
public static class DomainChecker
{
    public static async Task<CheckReport> CheckAsync(CheckOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var domain = options.Domain;
        var entries = new ConcurrentQueue<MailLogEntry>();
        using var log = new MailLog(null, minimum: MailLogLevel.Debug);
        log.Written += entries.Enqueue;

        var dns = new DnsClientResolver(new DnsResolverOptions
        {
            NameServers = options.DnsServer is null ? Array.Empty<IPEndPoint>() : new[] { options.DnsServer },
            Timeout = options.Timeout < TimeSpan.FromSeconds(5) ? options.Timeout : TimeSpan.FromSeconds(5),
            Retries = 1,
            UseCache = false,
        });
        var verifier = options.CaBundlePath is null ? CertificateVerifier.System : CertificateVerifier.FromPemFile(options.CaBundlePath);

        var policyTask = CheckPolicyAsync(options, dns, verifier, log, ct);
        var mxTask = new MxResolver(dns) { Port = options.SmtpPort }.ResolveAsync(domain, IpPreference.PreferV4, ct);
        await Task.WhenAll(policyTask, mxTask).ConfigureAwait(false);
        var (status, txt, policyReport, policy) = await policyTask.ConfigureAwait(false);
        var resolution = await mxTask.ConfigureAwait(false);

        var mode = policy?.Mode;
        var enforced = mode is StsMode.Enforce or StsMode.Testing; // the MX filter and TLS checks apply (testing: reported)
        var dcid = 0L;
        var hosts = resolution.Hosts
            .OrderBy(h => h.Preference).ThenBy(h => h.Name, StringComparer.Ordinal)
            .ToList();
        var hostTasks = hosts.Select(h =>
        {
            bool? match = enforced ? MxMatcher.MatchesAny(policy!, h.Name) : null;
            return CheckHostAsync(h, match, mode == StsMode.Enforce && match == true, options, verifier, log,
                () => Interlocked.Increment(ref dcid), ct);
        }).ToArray();
        var hostReports = await Task.WhenAll(hostTasks).ConfigureAwait(false);
        var mx = new MxReport(MxOutcome(resolution, options.MxOverride is not null),
            resolution.Ok || (resolution.Hosts.Count > 0 && options.MxOverride is not null) ? null : resolution.Error, hostReports);

        var problems = new List<string>();
        var warnings = new List<string>();
        warnings.AddRange(txt.Warnings.Select(w => $"TXT: {w}"));
        if (policyReport is not null) warnings.AddRange(policyReport.Warnings.Select(w => $"policy: {w}"));
        if (policyReport?.Certificate is { Ok: false } pc && policyReport.Ok)
            warnings.Add($"policy host certificate (direct probe): {pc.Error}");

        var hostIssues = hostReports.SelectMany(h => h.Problems).ToList();
        if (enforced) problems.AddRange(hostIssues);
        else warnings.AddRange(hostIssues);

        var answering = hostReports.Where(h => h.Smtp?.Connected == true).ToList();
        var passing = hostReports.Where(h => h.Passes).ToList();
        string? resultType = null;
        bool deliverable;
        string verdict;
        var counts = $"{passing.Count} of {hostReports.Length} MX host{(hostReports.Length == 1 ? "" : "s")} pass";

        if (status == PolicyStatus.TxtTempFail)
        {
            resultType = TlsRptResultType.StsPolicyFetchError.ToWireString();
            problems.Insert(0, $"TXT lookup of {txt.Name} failed: {txt.Error}");
            deliverable = false;
            verdict = $"not deliverable (temporary failure): the {txt.Name} TXT lookup failed, a sender must defer ({resultType})";
        }
        else if (status == PolicyStatus.FetchFailed)
        {
            resultType = policyReport!.ResultType;
            problems.Insert(0, $"policy fetch failed ({policyReport.Failure}): {policyReport.Error}");
            warnings.Add("RFC 8461 §3.3: a sender with a still-valid cached policy keeps using it; one without delivers as if there "
                         + "were no policy. The published MTA-STS setup is broken either way.");
            deliverable = false;
            verdict = $"not deliverable (temporary failure): TXT record published but the policy cannot be used ({resultType})";
        }
        else if (resolution.Hosts.Count == 0)
        {
            problems.Add(resolution.Error ?? "no MX hosts");
            deliverable = false;
            verdict = $"not deliverable: {resolution.Error}";
        }
        else if (mode == StsMode.Enforce)
        {
            deliverable = passing.Count > 0;
            verdict = deliverable
                ? $"deliverable: MTA-STS enforce, {counts} ({string.Join(", ", passing.Select(h => h.Name))})"
                : "not deliverable: MTA-STS enforce, no MX host matches the policy with STARTTLS, TLS >= 1.2 and a valid certificate";
        }
        else
        {
            deliverable = answering.Count > 0;
            var what = mode switch
            {
                StsMode.Testing => $"MTA-STS testing, {counts}" + (problems.Count > 0 ? $", {problems.Count} failure{(problems.Count == 1 ? "" : "s")} reported only" : ""),
                StsMode.None => "MTA-STS policy mode none (MTA-STS not applied)",
                _ => "no MTA-STS policy",
            };
            verdict = deliverable
                ? $"deliverable: {what}; {answering.Count} of {hostReports.Length} MX host{(hostReports.Length == 1 ? "" : "s")} answer"
                : $"not deliverable: no MX host answers ({what})";
            if (!deliverable) problems.Add("no MX host accepted an SMTP connection");
        }

        return new CheckReport(domain, deliverable, verdict, status, mode?.ToWireString(), resultType, txt, policyReport, mx,
            problems, warnings, entries.Select(e => $"{e.Level}: {e.Text}").ToList());
    }

    private static async Task<(PolicyStatus, TxtReport, PolicyReport?, StsPolicy?)> CheckPolicyAsync(CheckOptions o,
        IDnsResolver dns, CertificateVerifier verifier, MailLog log, CancellationToken ct)
    {
        var domain = o.Domain;
        var name = "_mta-sts." + domain;
        var answer = await dns.TxtAsync(name, ct).ConfigureAwait(false);
        var joined = answer.Records.Select(r => r.Joined).ToList();
        switch (answer.Outcome)
        {
            case DnsOutcome.TempFail:
                log.Info("mtasts_txt_failure", $"Failure encountered while fetching MTA-STS TXT record for domain({domain})",
                    ("domain", domain), ("error", answer.Error));
                return (PolicyStatus.TxtTempFail, new TxtReport(name, "tempfail", joined, null, answer.Error, Array.Empty<string>()), null, null);
            case DnsOutcome.NxDomain:
            case DnsOutcome.NoData:
                var none = answer.Outcome == DnsOutcome.NxDomain ? "nxdomain" : "nodata";
                log.Info("mtasts_txt_absent", $"No MTA-STS TXT record for domain({domain})", ("domain", domain), ("outcome", none));
                return (PolicyStatus.Absent, new TxtReport(name, none, joined, null, $"no TXT record at {name} ({none.ToUpperInvariant()})",
                    Array.Empty<string>()), null, null);
        }

        var selected = StsTxtParser.Select(answer.Records);
        if (!selected.Ok)
        {
            log.Info("mtasts_txt_invalid", $"Invalid MTA-STS TXT record for domain({domain}): {selected.Error}", ("domain", domain),
                ("error", selected.Error));
            return (PolicyStatus.Absent, new TxtReport(name, "ok", joined, null,
                $"{selected.Error} (RFC 8461 §3.1: treated as no policy)", selected.Warnings), null, null);
        }
        log.Info("mtasts_txt_fetched", $"Successfully fetched MTA-STS TXT record for domain({domain})", ("domain", domain),
            ("id", selected.Value!.Id));
        var txt = new TxtReport(name, "ok", joined, selected.Value.Id, null, selected.Warnings);

        var fetcher = new PolicyFetcher(dns, log, new PolicyFetcherOptions
        {
            ExtraCaBundlePath = o.CaBundlePath,
            Port = o.PolicyPort,
            // Connect (DNS + TCP + TLS, or proxy tunnel + TLS) within the step timeout; the whole fetch within twice it,
            // so that a hung connect is reported as the connect timeout it is.
            Timeout = o.Timeout * 2,
            ConnectTimeout = o.Timeout,
            ProxyConnectTimeout = o.Timeout,
        });
        var fetchTask = fetcher.FetchAsync(domain, new PolicyFetchRequest { Proxy = o.Proxy, LenientContentType = o.LenientContentType }, ct);
        // The certificate is shown from a direct connection; through a proxy only the fetch's own check applies
        // (a deployment that needs a proxy usually cannot connect directly).
        var certTask = o.Proxy is null
            ? PolicyHostProbe.RunAsync("mta-sts." + domain, o.PolicyPort, dns, verifier, o.Timeout, ct)
            : Task.FromResult<CertificateReport?>(null);
        await Task.WhenAll(fetchTask, certTask).ConfigureAwait(false);
        var fetch = await fetchTask.ConfigureAwait(false);
        var cert = await certTask.ConfigureAwait(false);

        var policy = fetch.Policy;
        var report = new PolicyReport(PolicyFetcher.PolicyUri(domain, o.PolicyPort).ToString(), Redacted(o.Proxy), fetch.Ok,
            fetch.Ok ? null : fetch.Failure.ToString(), fetch.FailureType?.ToWireString(), fetch.Error, policy?.Mode.ToWireString(),
            policy?.MaxAgeSeconds, policy?.Mx.Select(p => p.Pattern).ToList() ?? (IReadOnlyList<string>)Array.Empty<string>(),
            fetch.Body, fetch.Warnings, cert);
        if (fetch.Ok)
            log.Info("mtasts_policy_applying", $"Applying MTA-STS policy for the domain ({domain})", ("domain", domain),
                ("mode", policy!.Mode.ToWireString()));
        return (fetch.Ok ? PolicyStatus.Valid : PolicyStatus.FetchFailed, txt, report, policy);
    }

    private static async Task<MxHostReport> CheckHostAsync(MxHost host, bool? match, bool tlsRequired, CheckOptions o,
        CertificateVerifier verifier, MailLog log, Func<long> nextDcid, CancellationToken ct)
    {
        var problems = new List<string>();
        if (match == false) problems.Add($"{host.Name}: not covered by the policy's mx patterns");

        var targets = o.MxOverride is { } over
            ? new[] { over }
            : host.Addresses.Take(o.MaxAddressesPerHost).Select(a => new IPEndPoint(a, host.Port)).ToArray();
        var addresses = host.Addresses.Select(a => a.ToString()).ToList();
        if (targets.Length == 0)
        {
            problems.Add($"{host.Name}: {host.AddressError ?? "no address"}");
            return new MxHostReport(host.Name, host.Preference, addresses, match, null, false, null, problems);
        }

        SmtpProbe.Result? result = null;
        IPEndPoint used = targets[0];
        var attempts = new List<string>();
        foreach (var target in targets)
        {
            used = target;
            result = await new SmtpProbe(host.Name, target, o.HeloName, o.Timeout, verifier, log, nextDcid(), tlsRequired)
                .RunAsync(ct).ConfigureAwait(false);
            attempts.Add(result.Error is null ? $"{target}: ok" : $"{target}: {result.Error}");
            if (result.Connected) break;
        }
        var r = result!;
        var smtp = new SmtpProbeReport(used.ToString(), r.Connected, r.Greeting, r.Extensions, r.StartTls, r.Protocol, r.Cipher,
            r.Certificate, r.Error, attempts, r.Transcript);

        string? resultType = null;
        var tlsOk = false;
        if (!r.Connected)
        {
            problems.Add($"{host.Name}: {r.Error ?? "no SMTP service"}");
        }
        else if (!r.StartTls)
        {
            resultType = "starttls-not-supported";
            problems.Add($"{host.Name}: STARTTLS not offered");
        }
        else if (r.Protocol is null)
        {
            resultType = r.Error?.StartsWith("STARTTLS refused", StringComparison.Ordinal) == true ? "starttls-not-supported" : "validation-failure";
            problems.Add($"{host.Name}: {r.Error ?? "TLS not negotiated"}");
        }
        else if (r.Protocol is not ("TLSv1.2" or "TLSv1.3"))
        {
            resultType = "validation-failure";
            problems.Add($"{host.Name}: {r.Protocol} is below TLS 1.2 (RFC 8461 §4.2)");
        }
        else if (r.Certificate is not { Ok: true })
        {
            resultType = ReportType(r.Certificate?.Error);
            problems.Add($"{host.Name}: certificate: {r.Certificate?.Error ?? "none"}");
        }
        else
        {
            tlsOk = true;
        }
        var passes = r.Connected && tlsOk && match != false;
        return new MxHostReport(host.Name, host.Preference, addresses, match, smtp, passes, resultType, problems);
    }

    /// <summary>RFC 8460 §4.3.2.1 result type of a certificate error (OpenSSL wording from <see cref="CertificateVerifier"/>).</summary>
    private static string ReportType(string? error) => error switch
    {
        CertificateVerifier.NameMismatch => "certificate-host-mismatch",
        CertificateVerifier.Expired or CertificateVerifier.NotYetValid => "certificate-expired",
        CertificateVerifier.UnknownIssuer or CertificateVerifier.SelfSigned => "certificate-not-trusted",
        _ => "validation-failure",
    };

    private static string MxOutcome(MxResolution r, bool overridden)
    {
        if (r.Hosts.Count == 0)
            return r.EnhancedStatus switch
            {
                "5.1.10" => "null-mx",
                "5.1.2" => "nxdomain",
                "4.4.3" => "tempfail",
                _ => "error",
            };
        if (!r.Ok && !overridden) return r.Status == MxResolutionStatus.Transient ? "tempfail" : "no-address";
        return r.Source == MxSource.ImplicitMx ? "implicit" : "ok";
    }

    private static string? Redacted(Uri? proxy) =>
        proxy is null ? null : new UriBuilder(proxy) { UserName = "", Password = "" }.Uri.GetLeftPart(UriPartial.Authority);
}
