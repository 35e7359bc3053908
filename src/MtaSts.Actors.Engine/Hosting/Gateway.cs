using System.Net;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Bounces;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Engine.Intake;
using MtaSts.Actors.Engine.Persistence;
using MtaSts.Actors.Engine.Policy;
using MtaSts.Actors.Engine.TlsRpt;
using MtaSts.Actors.TlsRpt;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Policy.Cache;
using MtaSts.Actors.Policy.Fetch;
using MtaSts.Actors.Policy.Resolution;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Spool;
using MtaSts.Actors.Spool.Postgres;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>Test and embedding hooks: replace real components (DNS, transport, clock).</summary>
public sealed record GatewayOverrides
{
    public IDnsResolver? Dns { get; init; }
    public IDeliveryTransport? Transport { get; init; }
    public TimeProvider? Clock { get; init; }
    public EngineTuning? Tuning { get; init; }
    public int? PolicyHttpsPort { get; init; }
    public TextWriter? LogWriter { get; init; }
}

/// <summary>
/// The whole gateway wired in one place (Akka.Hosting): spool → listener → dispatcher → sharded destinations →
/// connections; policy resolution in its own supervised branch. Start-up order matters for durability (see
/// <see cref="StartCoreAsync"/>): the spool is recovered and every outstanding message re-dispatched before the
/// listener accepts new mail. Before all of that the
/// data directory is locked (<see cref="DataDirectoryLock"/>): a second gateway on it fails at start, as does one
/// whose SMTP port is taken (<see cref="ListenerBindException"/>); a failed start releases what it had taken.
/// </summary>
public sealed class Gateway : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly SmtpListener _listener;
    private readonly ISpool _spool;
    private readonly PolicyResolver _policy;
    private readonly PolicyStore _policyStore;
    private BackgroundWork _work = null!;
    private readonly ConfigWatcher _watcher;
    private readonly DataDirectoryLock _dataDirLock;
    private int _stopped;
    private Timer? _resumeTimer;
    private IdleMemoryTrim? _memoryTrim;
    /// <summary>The delivery transport when it keeps parked sessions (MX roll-up): QUIT at stop.</summary>
    private IAsyncDisposable? _parkedSessions;
    private MembershipGate _membership = null!;

    private Gateway(IHost host, SmtpListener listener, ISpool spool, PolicyResolver policy, PolicyStore store,
        ConfigWatcher watcher, MailLog log, ActorSystem system, IActorRef region, PendingIndex pending, DataDirectoryLock dataDirLock)
    {
        _host = host;
        _listener = listener;
        _spool = spool;
        _policy = policy;
        _policyStore = store;
        _watcher = watcher;
        Log = log;
        System = system;
        Region = region;
        Pending = pending;
        _dataDirLock = dataDirLock;
    }

    public MailLog Log { get; }
    public ActorSystem System { get; }
    public IActorRef Region { get; }
    public PendingIndex Pending { get; }
    public ISpool Spool => _spool;
    public PolicyResolver PolicyResolver => _policy;
    public IReadOnlyList<IPEndPoint> SmtpEndpoints => _listener.LocalEndpoints;
    public DestinationConfig Destinations => _watcher.Current;
    /// <summary>TLS-RPT (null when mtasts.tls-rpt.enabled = false): <c>SendReportsAsync(day)</c> sends reports on demand.</summary>
    public TlsRptService? TlsRpt { get; private init; }
    /// <summary>The node's outbound connection budget (<c>mtasts.delivery.max-connections</c>): tokens in use, destinations waiting.</summary>
    public ConnectionBudget? ConnectionBudget { get; private init; }

    // ---- what the operator surface (admin API, health, metrics) reads ----

    /// <summary>The MTA-STS policy cache (persistent; survives restarts).</summary>
    public PolicyStore PolicyCache => _policyStore;
    /// <summary>Where the spool's files are (segments; in a cluster the local spill directory of incoming bodies).</summary>
    public string? SpoolDirectory => _spool is SegmentSpool local ? local.DirectoryPath : _spool.SpillDirectory;
    /// <summary>Accepted mail lives in the cluster spool (PostgreSQL): one owner per domain in the cluster.</summary>
    public bool Clustered => _spool is IClusterSpool;
    public int ActiveSmtpSessions => _listener.ActiveSessions;
    public long SmtpDataInFlight => _listener.DataInFlight;
    /// <summary>StopAsync has begun (or finished): the listener no longer takes mail.</summary>
    public bool IsStopping => Volatile.Read(ref _stopped) == 1;

    /// <summary>This node is an Up member of its cluster (a single node is a cluster of one) and its actor system runs.</summary>
    public bool IsClusterMemberUp =>
        !System.WhenTerminated.IsCompleted && Cluster.Get(System).SelfMember.Status == MemberStatus.Up;

    /// <summary>mtasts.cluster.formation is not single-node: other nodes may be in this node's cluster.</summary>
    public bool IsClustered { get; private init; }

    /// <summary>Null when this node takes mail; else why the SMTP listener answers 421 4.3.2 and readiness fails
    /// ("not an Up cluster member (status Joining)", "actor system terminated", …). See <see cref="MembershipGate"/>.</summary>
    public string? AdmissionRefusal => _membership.Refusal;

    /// <summary>Completes when the actor system has terminated: after <see cref="StopAsync"/>, or unexpectedly (this
    /// node downed by the split-brain resolver, or removed from its cluster). <c>serve</c> exits non-zero on the latter.</summary>
    public Task Terminated => System.WhenTerminated;

    /// <summary>Opens the journal database and runs <c>SELECT 1</c>; null when it answers, else why not.</summary>
    public async Task<string?> ProbeJournalAsync(CancellationToken ct)
    {
        var cfg = System.Settings.Config;
        var cs = cfg.GetString("akka.persistence.journal.sql.connection-string", "");
        var provider = cfg.GetString("akka.persistence.journal.sql.provider-name", "");
        try
        {
            await using global::System.Data.Common.DbConnection c = provider.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase)
                ? new SqliteConnection(cs) : new Npgsql.NpgsqlConnection(cs);
            await c.OpenAsync(ct).ConfigureAwait(false);
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT 1";
            await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
            return null;
        }
        catch (Exception ex) when (ex is global::System.Data.Common.DbException or InvalidOperationException or IOException or OperationCanceledException)
        {
            return $"{provider} journal: {ex.Message}";
        }
    }

    /// <summary>Operator "deliver now" (vendor <c>delivernow</c>, Postfix <c>postqueue -f</c>): every deferred recipient
    /// of the given destination, or of every destination with queued mail, becomes due at once. Returns how many
    /// destinations were told.</summary>
    public async Task<int> DeliverNowAsync(string? domain = null, CancellationToken ct = default)
    {
        IReadOnlyList<DestinationDomain> domains = domain is not null ? [DestinationDomain.Parse(domain)]
            : await DomainsWithMailAsync(ct).ConfigureAwait(false);
        foreach (var d in domains) Region.Tell(new Destination.DeliverNow(d));
        Log.Info("deliver_now", domain is null
                ? $"Deliver now: {domains.Count} destinations with queued mail retried at once"
                : $"Deliver now: destination {domains[0]} retried at once",
            ("destinations", domains.Count));
        return domains.Count;
    }

    /// <summary>Re-reads the configuration files and the imported destconfig file now if any changed (as the watcher's
    /// poll would); true when a new configuration was applied.</summary>
    public bool ReloadConfiguration() => _watcher.Check();

    /// <summary>The whole configuration in force (the destination controls as reloaded).</summary>
    public GatewayConfig Configuration => _watcher.Gateway;

    /// <summary>The policy branch (the supervisor forwards to the resolver actor): <c>ResolvePolicy</c>, <c>RefreshPolicy</c>.</summary>
    public ActorSelection PolicyBranchSelection => System.ActorSelection("/user/policy");

    public static async Task<Gateway> StartAsync(GatewayConfig config, GatewayOverrides? overrides = null, CancellationToken ct = default)
    {
        overrides ??= new GatewayOverrides();
        var dataDir = Path.GetFullPath(config.DataDir);
        Directory.CreateDirectory(dataDir);
        var log = config.Log.CreateLog(overrides.LogWriter);
        var clock = overrides.Clock ?? TimeProvider.System;

        // 0. One gateway per data directory: locked before the spool, SQLite or the policy cache touch it, and held
        //    until DisposeAsync (the OS releases it when the process dies). A second gateway fails here.
        DataDirectoryLock dataDirLock;
        try
        {
            dataDirLock = DataDirectoryLock.Acquire(dataDir);
        }
        catch (DataDirectoryInUseException ex)
        {
            log.Critical("data_dir_in_use", ex.Message, ("data_dir", dataDir), ("pid", ex.HolderPid));
            throw;
        }
        // A failed start undoes what it did, newest first: the lock is released last, when nothing uses the directory.
        var undo = new Stack<Func<ValueTask>>();
        undo.Push(() =>
        {
            dataDirLock.Dispose();
            return ValueTask.CompletedTask;
        });
        try
        {
            return await StartCoreAsync(config, overrides, dataDir, log, clock, dataDirLock, undo, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            if (ex is ListenerBindException bind)
                log.Critical("smtp_listen_failed", bind.Message, ("endpoint", bind.Endpoint.ToString()));
            while (undo.TryPop(out var step))
            {
                try
                {
                    await step().ConfigureAwait(false);
                }
                catch (Exception cleanup)
                {
                    log.Warning("gateway_start_cleanup", $"Gateway start failed; clean-up step failed: {cleanup.GetType().Name}: {cleanup.Message}");
                }
            }
            log.Flush();
            throw;
        }
    }

    /// <summary>Starts the features in the order durability needs: (1) the spool, the durable truth of what must still
    /// be delivered; (2) DNS and the MTA-STS policy branch; (3) the delivery side: transport, bounces, TLS-RPT and the
    /// actors (sharded destinations, intake dispatcher, cluster join); (4) what the spool still holds is re-dispatched;
    /// (5) last, the SMTP listener: no 250 is given before the spool and the delivery side are up (fail safe).</summary>
    /// <param name="undo">Every step that acquires something pushes how to release it (run by a failed start).</param>
    private static async Task<Gateway> StartCoreAsync(GatewayConfig config, GatewayOverrides overrides, string dataDir, MailLog log,
        TimeProvider clock, DataDirectoryLock dataDirLock, Stack<Func<ValueTask>> undo, CancellationToken ct)
    {
        // 1. Spool. A single node keeps it in local segment files and re-dispatches it in step 4; in a cluster it is
        //    the shared PostgreSQL spool, and each domain's owner loads its own queue from it wherever that owner runs.
        var spool = await OpenSpoolAsync(config, dataDir, log, ct).ConfigureAwait(false);
        undo.Push(spool.DisposeAsync);
        var clustered = spool is IClusterSpool;
        IReadOnlyList<RecoveredMessage> recovered = clustered ? [] : spool.Recover();
        // MIDs are unique across restarts (above the highest stored); in a cluster MIDs, ICIDs and DCIDs are leased in
        // blocks from the database, so that no two nodes log the same id.
        var (mids, icids, dcids) = spool is PostgresSpool pg
            ? (pg.Mids, pg.ConnectionIds("ICID"), pg.ConnectionIds("DCID"))
            : (new IdSequence(spool.HighestMid), new IdSequence(Epoch()), new IdSequence(Epoch()));

        // 2. DNS and the policy cache and resolver.
        var dns = overrides.Dns ?? new DnsClientResolver(config.Dns.Resolver);
        var policyStore = PolicyStore.Open(Path.Combine(dataDir, "mta-sts-cache.db"));
        undo.Push(() =>
        {
            policyStore.Dispose();
            return ValueTask.CompletedTask;
        });
        var fetcher = new PolicyFetcher(dns, log, config.Policy.Fetcher with { Port = overrides.PolicyHttpsPort ?? config.Policy.Fetcher.Port });
        var policy = new PolicyResolver(dns, fetcher, policyStore, log, new PolicyResolverOptions(), clock);
        undo.Push(policy.DisposeAsync);
        policy.StartBackgroundRefresh();
        var watcher = new ConfigWatcher(config, log);
        undo.Push(() =>
        {
            watcher.Dispose();
            return ValueTask.CompletedTask;
        });

        // 3. The delivery side. Bounces and TLS-RPT reports are spooled under new MIDs, then dispatched: both are
        //    attached to the intake dispatcher while the actor system starts, before this node joins its cluster.
        var extraCaBundle = config.Policy.Fetcher.ExtraCaBundlePath;
        var tlsRptMail = new SpoolReportSubmitter(spool, mids, log, clock);
        var tlsRpt = TlsRptHosting.Create(config.TlsRpt, config.Hostname, dataDir, dns, tlsRptMail, () => watcher.Gateway.Policy.Proxy,
            extraCaBundle, log, clock, undo);
        // Node-wide outbound connection limit: destinations beyond it wait their turn (logged when it starts to bind).
        var budget = new ConnectionBudget(config.Delivery.MaxConnections, (limit, waiting) => log.Info("delivery_connection_limit",
            $"Outbound connection limit reached ({limit} connections, mtasts.delivery.max-connections): {waiting} destinations wait for a connection",
            ("limit", limit), ("waiting", waiting)));
        var transport = overrides.Transport ?? Transport(config, watcher, dns, spool, log, dcids, extraCaBundle, tlsRpt, budget);
        if (transport is IAsyncDisposable parkedSessions) undo.Push(parkedSessions.DisposeAsync);
        // Compact where the spool reads messages back: a million queued messages keep MID, receive time and RIDs here.
        var pending = new PendingIndex(compact: spool.CanReadMessages);
        var tuning = (overrides.Tuning ?? new EngineTuning()) with
        {
            ConnectionIdleTime = config.Delivery.ConnectionIdleTime,
            MxRollup = config.Delivery.MxRollup,
        };
        var bounces = new BounceService(spool, mids, log, config.Hostname, clock);
        IActorRef? policyRef = null;
        Dispatcher dispatcher = null!;
        var services = new DeliveryServices(transport, spool, log, dcids,
            domain => Settings(watcher.Gateway, domain), bounces, clock, () => policyRef, tuning) { Budget = budget };
        PrepareSqlite(dataDir);
        // PostgreSQL: the first node creates the persistence tables, the others wait for them (no CREATE race).
        if (!IsSqlite(config)) await PostgresSchemaInit.RunAsync(config.Hocon, config.HoconText, log, TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
        var host = BuildHost(AkkaConfig(config, dataDir), ab => ab
            .AddPolicyBranch(policy, domain => watcher.Gateway.Policy.ResolveOptions(domain), log, started: supervisor => policyRef = supervisor)
            .AddDestinations(services, pending)
            .AddIntake(clustered ? null : pending, log, started: d =>
            {
                dispatcher = d;
                bounces.Attach(d);
                tlsRptMail.Attach(d);
            })
            .AddClusterJoin(config.Cluster, log));
        undo.Push(async () =>
        {
            // As in StopAsync: transactions in flight report back, the actors stop, finish tasks complete.
            services.Work.BeginDrain();
            await services.Work.WhenDeliveriesDoneAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await services.Work.WhenIdleAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            host.Dispose();
        });
        await host.StartAsync(ct).ConfigureAwait(false);
        var sys = host.Services.GetRequiredService<ActorSystem>();
        var regionRef = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<DestinationRegion>(ct).ConfigureAwait(false);
        var membership = MembershipGate.Start(sys, config.Cluster.IsClustered, log);
        undo.Push(() =>
        {
            membership.Dispose();
            return ValueTask.CompletedTask;
        });
        tlsRpt?.Start();
        var resumeTimer = StartResuming(sys, regionRef, spool, pending, watcher, tuning, log, undo);
        var memoryTrim = new IdleMemoryTrim(log); // after a burst, give the GC's retained heap back once the node is quiet
        undo.Push(memoryTrim.DisposeAsync);

        // 4. Re-dispatch what the spool still holds (before new mail is accepted).
        foreach (var r in recovered) dispatcher.Dispatch(r.Message, r.OutstandingRids);
        pending.MarkLoaded();
        if (recovered.Count > 0)
            log.Info("spool_recovered", $"Recovered {recovered.Count} queued messages from the spool", ("messages", recovered.Count));

        // 5. The listener, last: 250 only after the spool fsync, then hand-off to the destinations.
        var listener = await IntakeHosting.StartListenerAsync(config.Listener.LoadCertificate() with
        {
            HostName = config.Hostname,
            Admission = () => membership.Refusal,
            BounceVerification = () => watcher.Gateway.BounceVerification,
        }, spool, dispatcher, mids, icids, log, undo, ct).ConfigureAwait(false);
        watcher.Start();
        log.Info("gateway_started",
            $"Gateway {config.Hostname} listening on {string.Join(", ", listener.LocalEndpoints)} (data {dataDir})",
            ("endpoints", listener.LocalEndpoints.Select(e => e.ToString()).ToArray()));
        return new Gateway(host, listener, spool, policy, policyStore, watcher, log, sys, regionRef, pending, dataDirLock)
        {
            _resumeTimer = resumeTimer,
            _memoryTrim = memoryTrim,
            _membership = membership,
            IsClustered = config.Cluster.IsClustered,
            _work = services.Work,
            _parkedSessions = transport as IAsyncDisposable,
            ConnectionBudget = budget,
            TlsRpt = tlsRpt,
        };
    }

    /// <summary>The SMTP transport: per-profile outbound options from the live configuration (source address, client
    /// certificate), PKIX trust with the extra CA bundle, the MX override, TLS-RPT recording.</summary>
    private static SmtpDeliveryTransport Transport(GatewayConfig config, ConfigWatcher watcher, IDnsResolver dns, ISpool spool, MailLog log,
        IdSequence dcids, string? extraCaBundle, TlsRptService? tlsRpt, ConnectionBudget budget)
    {
        var verifier = extraCaBundle is null ? CertificateVerifier.System : CertificateVerifier.FromPemFile(extraCaBundle);
        return new SmtpDeliveryTransport(new MxResolver(dns, config.Delivery.MxOverrideMap()), dns, spool, log, dcids, profile => new OutboundOptions
        {
            HeloName = config.Hostname,
            LogOutcomes = false, // the destination actor logs each outcome
            Verifier = verifier,
            ConnectTimeout = config.Delivery.ConnectTimeout,
            CommandTimeout = config.Delivery.CommandTimeout,
            DataTimeout = config.Delivery.DataTimeout,
            LocalAddress = watcher.Gateway.SourceAddressFor(profile.SourceAddress),
            ClientCertificate = LoadClientCertificate(profile.ClientCertificate),
        }, tlsRpt?.Recorder, () => watcher.Gateway.BounceVerification,
            new DeliverySiteOptions(config.Delivery.MxRollup, config.Delivery.ConnectionIdleTime, budget, new EngineTuning().InitialConcurrency,
                config.Delivery.MxRollupMaxConnections));
    }

    /// <summary>The actors' host: Akka (single-node cluster by default) with the features <paramref name="features"/> adds.</summary>
    private static IHost BuildHost(Config akkaConfig, Func<AkkaConfigurationBuilder, AkkaConfigurationBuilder> features)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        // The embedding process owns SIGTERM/SIGINT (serve drains deliveries, then stops the actors): the host's default
        // console lifetime would stop the actor system on the same signal, first, and look like a downed node (exit 4).
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        builder.Services.AddAkka("mtasts", (ab, _) => features(ab.AddHocon(akkaConfig, HoconAddMode.Prepend)));
        return builder.Build();
    }

    /// <summary>Every destination with mail is resumed periodically (an entity stopped by a failed journal write comes
    /// back without waiting for new mail or a restart) and after a reload (new controls apply at once). In a cluster
    /// also when a member leaves: the domains it owned get a new owner now, not at their next message.</summary>
    private static Timer StartResuming(ActorSystem sys, IActorRef region, ISpool spool, PendingIndex pending, ConfigWatcher watcher,
        EngineTuning tuning, MailLog log, Stack<Func<ValueTask>> undo)
    {
        void ResumeAll() => _ = ResumeAllAsync();
        async Task ResumeAllAsync()
        {
            try
            {
                foreach (var domain in await DomainsWithMailAsync(spool, pending, CancellationToken.None).ConfigureAwait(false))
                    region.Tell(new Destination.Resume(domain));
            }
            catch (Exception ex)
            {
                log.Warning("resume_failed", $"Resume of the destinations with mail failed: {ex.Message}");
            }
        }
        var resumeTimer = new Timer(_ => ResumeAll(), null, tuning.ResumeInterval, tuning.ResumeInterval);
        undo.Push(resumeTimer.DisposeAsync);
        watcher.Reloaded += ResumeAll;
        if (spool is IClusterSpool)
        {
            pending.MarkLoaded(); // nothing to re-dispatch on this node: owners load from the cluster spool
            Action resumeAll = ResumeAll;
            // The coordinator frees a removed member's shards only after the downing provider's removal margin (and, when the
            // coordinator itself was on that member, after its singleton moved and re-read its state): a Resume sent at
            // the removal reaches the dead region and is dropped (measured: node 1's domains waited for the minute sweep).
            var margin = Cluster.Get(sys).DowningProvider.DownRemovalMargin;
            var onLeave = sys.ActorOf(Props.Create(() => new MemberRemovedListener(resumeAll, margin)), "member-removed");
            undo.Push(() =>
            {
                sys.Stop(onLeave);
                return ValueTask.CompletedTask;
            });
            ResumeAll(); // domains whose owner died while this node was down
        }
        return resumeTimer;
    }

    /// <summary>Graceful stop: no new sessions, in-flight transactions finish, actors stop, the spool closes.</summary>
    public async Task StopAsync(CancellationToken ct = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        Log.Info("gateway_stopping", "Gateway stopping: listener closed, finishing in-flight work");
        await _listener.StopAsync(ct).ConfigureAwait(false);
        if (_resumeTimer is not null) await _resumeTimer.DisposeAsync().ConfigureAwait(false);
        if (_memoryTrim is not null) await _memoryTrim.DisposeAsync().ConfigureAwait(false);
        _watcher.Dispose();
        // Transactions in flight report their outcome before the actors stop; none are started any more.
        _work.BeginDrain();
        if (!await _work.WhenDeliveriesDoneAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false))
            Log.Warning("gateway_stop_deliveries", $"Gateway stopping with {_work.DeliveriesInFlight} SMTP transactions still in flight: " +
                "their mail is delivered again after the restart if the receiver had accepted it");
        await _host.StopAsync(ct).ConfigureAwait(false);
        if (_parkedSessions is not null) await _parkedSessions.DisposeAsync().ConfigureAwait(false);
        // Delivered mail must be marked done (and bounces spooled) before the spool closes, or it is re-sent after a restart.
        if (!await _work.WhenIdleAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false))
            Log.Warning("gateway_stop_pending", "Gateway stopping with finish tasks still running: some delivered mail may be re-sent after the restart");
        await _policy.DisposeAsync().ConfigureAwait(false);
        _policyStore.Dispose();
        if (TlsRpt is not null) await TlsRpt.DisposeAsync().ConfigureAwait(false); // flushes the counters; before the spool closes
        await _spool.DisposeAsync().ConfigureAwait(false);
        _membership.Dispose();
        Log.Info("gateway_stopped", "Gateway stopped");
        Log.Flush();
    }

    /// <summary>Stops (if not yet stopped), then releases the data directory for the next gateway.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync().ConfigureAwait(false);
            await _listener.DisposeAsync().ConfigureAwait(false);
            _host.Dispose();
        }
        finally
        {
            _dataDirLock.Dispose();
        }
    }

    private static async Task<ISpool> OpenSpoolAsync(GatewayConfig config, string dataDir, MailLog log, CancellationToken ct)
    {
        if (!config.Clustered) return new SegmentSpool(new SegmentSpoolOptions(Path.Combine(dataDir, "spool")), log);
        return await PostgresSpool.OpenAsync(new PostgresSpoolOptions(config.ClusterSpoolConnectionString)
        {
            SpillDirectory = Path.Combine(dataDir, "spool", "incoming"),
            DomainKey = d => DestinationDomain.TryParse(d, out var dd, out _) ? dd.Name : null,
        }, log, ct).ConfigureAwait(false);
    }

    private Task<IReadOnlyList<DestinationDomain>> DomainsWithMailAsync(CancellationToken ct) => DomainsWithMailAsync(_spool, Pending, ct);

    /// <summary>Destinations with queued mail: the cluster spool's (every node's mail) or this node's.</summary>
    private static async Task<IReadOnlyList<DestinationDomain>> DomainsWithMailAsync(ISpool spool, PendingIndex pending, CancellationToken ct)
    {
        if (spool is not IClusterSpool cluster) return pending.Domains.ToArray();
        var list = new List<DestinationDomain>();
        foreach (var (domain, _) in await cluster.DomainsAsync(ct).ConfigureAwait(false))
            if (DestinationDomain.TryParse(domain, out var d, out _)) list.Add(d);
        return list;
    }

    /// <summary>Calls <paramref name="onRemoved"/> when a cluster member is removed (its shards need new owners), then every
    /// <see cref="SweepInterval"/> until twice the removal margin plus <see cref="SweepSlack"/> have passed: the removed
    /// member's shards are re-allocated only after the margin (twice when the coordinator moved with it), and a domain is
    /// started on its new owner (which loads its queue from the cluster spool) by the first Resume after that. A Resume
    /// to a running destination only pumps it.</summary>
    private sealed class MemberRemovedListener : ReceiveActor, IWithTimers
    {
        private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(2);
        private static readonly TimeSpan SweepSlack = TimeSpan.FromSeconds(20);   // coordinator recovery under load
        private sealed record Sweep;

        public ITimerScheduler Timers { get; set; } = null!;

        public MemberRemovedListener(Action onRemoved, TimeSpan margin)
        {
            var until = DateTime.MinValue;
            Receive<ClusterEvent.MemberRemoved>(_ =>
            {
                onRemoved();
                until = DateTime.UtcNow + margin + margin + SweepSlack;
                if (!Timers.IsTimerActive("sweep")) Timers.StartPeriodicTimer("sweep", new Sweep(), SweepInterval);
            });
            Receive<Sweep>(_ =>
            {
                if (DateTime.UtcNow > until) Timers.Cancel("sweep");
                else onRemoved();
            });
            Receive<ClusterEvent.IMemberEvent>(_ => { });
            Receive<ClusterEvent.CurrentClusterState>(_ => { });
        }

        protected override void PreStart() =>
            Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot, typeof(ClusterEvent.MemberRemoved));

        protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
    }

    private static DestinationSettings Settings(GatewayConfig config, DestinationDomain domain)
    {
        var (profile, bounce) = config.Destinations.Resolve(domain);
        return new DestinationSettings(profile, bounce, config.Throttle.For(profile));
    }

    private static X509Certificate2? LoadClientCertificate(string? path)
    {
        if (string.IsNullOrEmpty(path)) return null;
        var key = Path.ChangeExtension(path, ".key");
        return File.Exists(key) ? X509Certificate2.CreateFromPemFile(path, key) : X509CertificateLoader.LoadPkcs12FromFile(path, null);
    }

    // DCID/ICID are unique across restarts without persisting a counter: seconds since 2020 × 1000.
    private static long Epoch() => (DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 1_577_836_800) * 1000;

    private static bool IsSqlite(GatewayConfig config) =>
        config.Hocon.GetString("akka.persistence.journal.sql.provider-name", "SQLite.MS").StartsWith("SQLite", StringComparison.OrdinalIgnoreCase);

    /// <summary>SQLite: WAL is a property of the file (measured ≈3× faster persists); set it before Akka opens it.</summary>
    private static void PrepareSqlite(string dataDir)
    {
        foreach (var file in new[] { "journal.db", "snapshots.db", "sharding.db" })
        {
            using var c = new SqliteConnection($"Data Source={Path.Combine(dataDir, file)}");
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode=WAL;";
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>The loaded HOCON with SQLite paths moved under the data directory, parsed flat: Akka's HOCON merge
    /// recurses without end on some fallback chains handed to Akka.Hosting, so overrides are appended as text.
    /// SQLite is single-node only (a cluster is refused without PostgreSQL) and the data directory is locked to this
    /// process, so the journal and snapshot store are the single-writer ones (<see cref="SingleWriterSqlite"/>):
    /// a destination that never deferred recovers without a query.</summary>
    private static Config AkkaConfig(GatewayConfig config, string dataDir)
    {
        string Db(string file) => $"\"Data Source={Path.Combine(dataDir, file).Replace("\\", "/")};Default Timeout=60\"";
        if (!IsSqlite(config) || config.HoconText.Length == 0) return config.Hocon;
        return ConfigurationFactory.ParseString(config.HoconText + $$"""

            akka.persistence.journal.sql.connection-string = {{Db("journal.db")}}
            akka.persistence.journal.sharding.connection-string = {{Db("sharding.db")}}
            akka.persistence.snapshot-store.sql.connection-string = {{Db("snapshots.db")}}
            akka.persistence.snapshot-store.sharding.connection-string = {{Db("sharding.db")}}
            akka.persistence.journal.sql.class = "{{SingleWriterSqlite.JournalClass}}"
            akka.persistence.snapshot-store.sql.class = "{{SingleWriterSqlite.SnapshotStoreClass}}"
            """);
    }
}

/// <summary>A host lifetime that reacts to no signal: the embedding process owns SIGTERM/SIGINT (serve drains the
/// deliveries, then stops its hosts). The default console lifetime would stop a host on the same signal, first — the
/// actor system would look like a downed node, and a host still starting would fail its start with a cancellation.</summary>
public sealed class EmbeddedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
