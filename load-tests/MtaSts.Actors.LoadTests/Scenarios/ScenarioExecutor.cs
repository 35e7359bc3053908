using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Net;
using System.Globalization;
using System.Net;
using MtaSts.Actors.LoadTests.Core;
using MtaSts.Actors.LoadTests.Receivers;
using MtaSts.Actors.LoadTests.Reports;
using MtaSts.Actors.LoadTests.Smtp;
using MtaSts.Actors.LoadTests.Targets;

namespace MtaSts.Actors.LoadTests.Scenarios;

/// <summary>
/// Runs one scenario against one target (one variant): receiver up, target up, warm-up + measured injection,
/// drain until everything accepted has arrived (or the drain bound), target and receiver down. A 1 s sampler
/// feeds the time series and the live progress line.
/// </summary>
public sealed class ScenarioExecutor(ScenarioDefinition scenario, RunOptions o)
{
    /// <summary>"baseline", "mta-sts on", "metrics off #2", "mta-sts off, metrics on" …: what differs between the runs.</summary>
    public static string VariantName(RunOptions o, bool mtaSts, bool? metrics, int repeat)
    {
        var parts = new List<string>();
        if (mtaSts || o.MtaStsVariants.Length > 1) parts.Add(mtaSts ? "mta-sts on" : "mta-sts off");
        if (metrics is { } m) parts.Add((m ? "metrics on" : "metrics off") + (repeat > 1 ? $" #{repeat}" : ""));
        return parts.Count == 0 ? "baseline" : string.Join(", ", parts);
    }

    /// <param name="metrics">mtasts.admin.metrics for the gateway (null: its default).</param>
    /// <param name="repeat">1-based repeat number of this metrics setting (for the variant's name).</param>
    /// <param name="variantName">The run's name in the report (default: from the MTA-STS and metrics settings).</param>
    public async Task<TargetRunResult> RunAsync(string targetName, bool mtaSts, CancellationToken ct, bool? metrics = null, int repeat = 1, string? variantName = null)
    {
        var variant = variantName ?? VariantName(o, mtaSts, metrics, repeat);
        var runTag = "L" + DateTime.UtcNow.ToString("HHmmssfff", CultureInfo.InvariantCulture);
        var sinkEp = new IPEndPoint(IPAddress.Loopback, o.SinkPort ?? LoopbackPort.Free());
        var plan = DestinationPlan.Create(o.Domains, o.Zipf);
        var ledger = new DeliveryLedger(runTag, Math.Min(20_000_000, o.Messages * 3 / 2 + 500_000));
        var workDirectory = Path.Combine(o.WorkDirectory, runTag);
        Directory.CreateDirectory(workDirectory);
        // --tls: one test CA per run; the receiver presents a certificate for the MX name it is reached by.
        using var tlsCa = o.Tls ? new TestCertificateAuthority("MtaSts.Actors load-test SMTP CA") : null;
        using var tlsCert = tlsCa?.Issue(LocalMtaStsWorld.MxHost);
        var tlsBundle = tlsCa?.WriteRootPem(Path.Combine(workDirectory, "smtp-tls"));
        await using var receiver = CreateReceiver(sinkEp, ledger, tlsCert);
        await using var target = CreateTarget(targetName, sinkEp);
        var routes = new List<KeyValuePair<string, IPEndPoint>> { new("*", sinkEp) };
        var spec = new TargetSpec(workDirectory, routes, plan.Domains, mtaSts, o.RetryInterval, o.DestinationConcurrency, o.MessagesPerConnection,
            LocalMtaSts: o.MtaStsVariants.Contains(true) || o.Tls, Metrics: metrics, TlsCa: tlsCa, TlsCaBundle: tlsBundle,
            MxRollup: o.MxRollup, PerMxIp: o.PerMxIp, MxRollupMaxConnections: o.MxRollupMaxConnections);

        try
        {
            if (!o.Backlog) await receiver.StartAsync(ct);
            Console.Error.WriteLine($"[{scenario.Name}/{targetName}/{variant}] starting target (receiver {receiver.Name} on {sinkEp}) …");
            var notAvailable = target is CeilingTarget && o.Backlog
                ? "not meaningful here: the ceiling has no queue to hold mail while the receiver is down (backlog needs a relay)"
                : await target.StartAsync(spec, ct);
            if (notAvailable is not null)
            {
                Console.Error.WriteLine($"[{scenario.Name}/{targetName}] {notAvailable}");
                return new TargetRunResult { Target = targetName, Variant = variant, MtaSts = mtaSts, Metrics = metrics, NotAvailable = notAvailable, Facts = target.Facts };
            }
            var result = await MeasureAsync(targetName, variant, mtaSts, target, receiver, ledger, plan, spec.WorkDirectory, ct);
            result = result with { Metrics = metrics };
            // End state of every acknowledged message: stop the target (the receiver stays up, so whatever a graceful
            // stop still delivers is counted), then read what it still holds and what it logged about bounces.
            await target.StopAsync();
            var ourKeys = ledger.Entries().Where(e => e.Accepted && e.QueueKey != 0).Select(e => e.QueueKey).ToHashSet();
            TargetHoldings? holdings;
            try { holdings = await target.ReadHoldingsAsync(ledger.RunTag, ourKeys, ct); }
            catch (Exception ex) when (ex is IOException or InvalidDataException or UnauthorizedAccessException or InvalidOperationException)
            {
                holdings = new TargetHoldings { Source = target.Name, Error = "could not read what the target holds: " + ex.Message };
            }
            var endState = EndStateAccounting.Account(ledger, holdings, receiver is CountingReceiver);
            Console.Error.WriteLine($"[{scenario.Name}/{targetName}/{variant}] end state: {EndStateLine(endState)}");
            return result with { EndState = endState, Facts = target.Facts.ToDictionary() };
        }
        finally
        {
            await target.StopAsync();
            await receiver.StopAsync();
            // MTASTS_LOAD_KEEP=1 keeps the target's work dir (gateway spool, journal and mail log; Postfix queue and maillog).
            if (Environment.GetEnvironmentVariable("MTASTS_LOAD_KEEP") != "1")
                try { Directory.Delete(spec.WorkDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private async Task<TargetRunResult> MeasureAsync(string targetName, string variant, bool mtaSts, ITarget target, IReceiver receiver,
        DeliveryLedger ledger, DestinationPlan plan, string workDir, CancellationToken ct)
    {
        var factory = new MessageFactory(ledger.RunTag, o.SizeBytes);
        var loadScenario = SmtpSendScenario.Create($"{scenario.Name}/{targetName}/{variant}", target.Endpoint, o, ledger, plan, factory);
        Sampler? sampler = null;
        long? settleUnresolved = null;
        if (o.Settle && !o.Backlog)
            loadScenario = loadScenario with
            {
                // Every target starts the measured part with the warm-up mail finished (delivered or bounced), so the
                // end-to-end rate is the same measured messages over the same work, whatever each took in the warm-up.
                Settle = async ct =>
                {
                    sampler!.Phase = "settle";
                    await DrainAsync(ledger, receiver, ct);
                    settleUnresolved = Unfinished(ledger, receiver);
                },
            };
        var runner = new LoadRunner(loadScenario);
        sampler = new Sampler($"{scenario.Name}/{targetName}/{variant}", runner, ledger, receiver, target);
        using var samplerCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var samplerTask = sampler.RunAsync(samplerCts.Token);
        var rssBefore = sampler.LastTargetRssMb;
        var pssBefore = sampler.LastTargetPssMb;

        sampler.Phase = o.WarmUp > TimeSpan.Zero ? "warmup" : "inject";
        var hiccups = new HiccupMeter(() => runner.Progress.Measuring);
        var runTask = runner.RunAsync(ct);
        while (!runTask.IsCompleted)
        {
            await Task.WhenAny(runTask, Task.Delay(200, CancellationToken.None));
            if (runner.Progress.Measuring && sampler.Phase is "warmup" or "settle") sampler.Phase = "inject";
        }
        var (harnessStalls, harnessGcPauseMs) = hiccups.Stop();
        var result = await runTask;

        BacklogSummary? backlog = null;
        long releaseUs = 0;
        if (o.Backlog)
        {
            // Receivers are down: everything accepted is queued in the target. Hold, sample, then release.
            sampler.Phase = "queued";
            var holdEnd = Clock.NowUs() + (long)o.BacklogHold.TotalMicroseconds;
            double peakRss = 0, peakPss = 0;
            while (Clock.NowUs() < holdEnd)
            {
                await Task.Delay(250, ct);
                peakRss = Math.Max(peakRss, sampler.LastTargetRssMb);
                peakPss = Math.Max(peakPss, sampler.LastTargetPssMb);
            }
            var queueAtRelease = target.QueueDepth();
            var spoolBytes = DiskBytes(workDir);
            sampler.Phase = "drain";
            releaseUs = Clock.NowUs();
            await receiver.StartAsync(ct);
            await target.FlushAsync(ct);
            // Memory per queued message from PSS: summed RSS counts shared pages once per process (Postfix forks many).
            var queued = Math.Max(1, ledger.AcceptedTotal);
            backlog = new BacklogSummary(ledger.AcceptedTotal, result.Seconds, rssBefore, peakRss, pssBefore, peakPss,
                (peakPss - pssBefore) * 1024 * 1024 / queued, (double)spoolBytes / queued, queueAtRelease, 0, 0, 0);
        }
        else sampler.Phase = "drain";

        await DrainAsync(ledger, receiver, ct);
        var drainedUs = Clock.NowUs();
        if (o.TailSample) await Task.Delay(1100, ct); // one more sample after the drain
        samplerCts.Cancel();
        try { await samplerTask; } catch (OperationCanceledException) { }
        Console.Error.WriteLine();

        var (notArrived, arrivedNotAccepted) = ledger.Reconcile();
        var countsPerMessage = receiver is CountingReceiver;
        var delivered = countsPerMessage ? ledger.DeliveredMeasured : receiver.MessagesReceived;
        var lastArrival = ledger.LastArrivalUs > 0 ? ledger.LastArrivalUs : drainedUs;
        var deliverySeconds = Math.Max(1e-6, (lastArrival - result.MeasureStartUs) / 1e6);
        if (backlog is not null)
        {
            var drainSeconds = Math.Max(1e-6, (lastArrival - releaseUs) / 1e6);
            var deliveredAfter = countsPerMessage ? ledger.DeliveredTotal : receiver.MessagesReceived;
            backlog = backlog with { DrainSeconds = drainSeconds, DrainRate = deliveredAfter / drainSeconds, DeliveredAfterRelease = deliveredAfter };
        }
        var steps = result.Steps;
        var accept = steps.First(s => s.Name == "iteration");
        var series = sampler.Series;
        var measuredSeries = series.Where(s => s.Phase is "inject").ToArray();
        var cpuSamples = series.Where(s => s.Phase is "inject" or "drain").ToArray();
        var resources = new ResourceSummary(
            series.Select(s => s.TargetRssMb).DefaultIfEmpty(0).Max(),
            series.Select(s => s.TargetPssMb).DefaultIfEmpty(0).Max(),
            cpuSamples.Select(s => s.TargetCpuPercent).DefaultIfEmpty(0).Average(),
            sampler.TargetCpuSeconds,
            ledger.AcceptedTotal == 0 ? 0 : sampler.TargetCpuSeconds * 1000 / Math.Max(1, ledger.AcceptedTotal),
            series.Any(s => s.TargetQueue is not null) ? series.Max(s => s.TargetQueue ?? 0) : null,
            series.Select(s => s.HarnessRssMb).DefaultIfEmpty(0).Max(),
            (measuredSeries.Length > 0 ? measuredSeries : cpuSamples).Select(s => s.HarnessCpuPercent).DefaultIfEmpty(0).Average());

        return new TargetRunResult
        {
            Target = targetName,
            Variant = variant,
            MtaSts = mtaSts,
            Facts = target.Facts,
            Simulation = result.Simulation,
            Receiver = receiver.Name,
            Accepted = result.Ok,
            Failed = result.Fail,
            FailCodes = accept.FailCodes,
            Unsent = result.Unsent,
            Saturated = result.Saturated,
            AcceptSeconds = result.Seconds,
            AcceptRate = result.OkPerSecond,
            AcceptMegabytesPerSecond = result.Bytes / result.Seconds / (1024 * 1024),
            Delivered = delivered,
            DeliverySeconds = deliverySeconds,
            EndToEndRate = delivered / deliverySeconds,
            SettleSeconds = runner.Progress.SettleUs > 0 ? runner.Progress.SettleUs / 1e6 : null,
            SettleUnresolved = settleUnresolved,
            Duplicates = ledger.Duplicates,
            NotArrived = countsPerMessage ? notArrived : Math.Max(0, ledger.AcceptedTotal - receiver.MessagesReceived),
            ArrivedNotAccepted = arrivedNotAccepted,
            ForeignArrivals = ledger.UnknownIds,
            AcceptLatency = accept.Latency,
            EndToEndLatency = ledger.EndToEnd.Summary(),
            Steps = steps.Where(s => s.Name != "iteration").ToArray(),
            ReceiverStats = receiver.Summary(),
            Resources = resources,
            HarnessStalls = harnessStalls,
            HarnessGcPauseMs = harnessGcPauseMs,
            Backlog = backlog,
            Series = series,
        };
    }

    public static string EndStateLine(EndStateSummary e) => !e.Proven && e.Source.StartsWith("smtp-sink", StringComparison.Ordinal) ? e.Source :
        string.Create(CultureInfo.InvariantCulture,
            $"{e.Accepted} acknowledged = {e.Delivered} delivered + {e.BouncedDsnReceived + e.BouncedDsnQueued + e.BouncedDsnUndeliverable} bounced (DSN received {e.BouncedDsnReceived}, DSN queued {e.BouncedDsnQueued}, DSN undeliverable {e.BouncedDsnUndeliverable}) + {e.StillQueued} still queued + {e.Lost} LOST; duplicates {e.Duplicates}, DSN duplicates {e.DsnDuplicates}")
        + (e.Proven ? "" : $" ({e.Source})");

    /// <summary>Waits until every accepted message has arrived or bounced back (failure DSN); gives up when arrivals
    /// stall or at the drain bound. What is still queued then is counted by the end-state accounting.</summary>
    /// <summary>Acknowledged messages not yet finished: neither arrived nor bounced with a DSN (a receiver that only
    /// counts gives arrivals, not ids).</summary>
    private static long Unfinished(DeliveryLedger ledger, IReceiver receiver) =>
        receiver is CountingReceiver ? ledger.Unresolved() : Math.Max(0, ledger.AcceptedTotal - receiver.MessagesReceived);

    private async Task DrainAsync(DeliveryLedger ledger, IReceiver receiver, CancellationToken ct)
    {
        var deadline = Clock.NowUs() + (long)o.DrainTimeout.TotalMicroseconds;
        var stallUs = (long)((o.StallTimeout?.TotalSeconds ?? Math.Max(15, 3 * (o.RetryInterval?.TotalSeconds ?? 0) + 10)) * 1_000_000);
        long last = -1, lastChange = Clock.NowUs();
        while (Clock.NowUs() < deadline)
        {
            var delivered = receiver.MessagesReceived;
            if (Unfinished(ledger, receiver) == 0) return;
            if (delivered != last) { last = delivered; lastChange = Clock.NowUs(); }
            else if (Clock.NowUs() - lastChange > stallUs) return;
            await Task.Delay(250, ct);
        }
    }

    /// <summary>Bytes on disk under the target's work directory (its queue/spool), for spool bytes per queued message.</summary>
    private static long DiskBytes(string dir)
    {
        try { return new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => { try { return f.Length; } catch (IOException) { return 0L; } }); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return 0; }
    }

    private IReceiver CreateReceiver(IPEndPoint ep, DeliveryLedger ledger, X509Certificate2? tls) => o.Receiver switch
    {
        "counting" => new CountingReceiver(ep, ledger, o.Faults) { TlsCertificate = tls },
        "smtp-sink" when tls is not null => throw new ArgumentException("--tls needs the counting receiver (smtp-sink offers no STARTTLS)"),
        "smtp-sink" => new PostfixSmtpSink(ep, o.SinkArgs),
        _ => throw new ArgumentException($"unknown receiver '{o.Receiver}' (counting | smtp-sink)"),
    };

    private ITarget CreateTarget(string name, IPEndPoint sink)
    {
        var port = o.TargetPort ?? LoopbackPort.Free();
        return name switch
        {
            CeilingTarget.TargetName => new CeilingTarget(sink),
            "postfix" => new PostfixRelayTarget(port),
            "gateway" => new GatewayTarget(port, o.GatewayDll, o.GatewayCommand, o.RepoRoot),
            GatewayTarget.ClusterTargetName => new GatewayTarget(port, o.GatewayDll, o.GatewayCommand, o.RepoRoot, cluster: true),
            GatewayTarget.Cluster3TargetName => new GatewayTarget(port, o.GatewayDll, o.GatewayCommand, o.RepoRoot, cluster: true, clusterNodes: 3),
            _ => new ExternalTarget(Loopback.Parse(name), o.TargetPid),
        };
    }
}
