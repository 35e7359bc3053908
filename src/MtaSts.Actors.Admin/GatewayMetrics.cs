using System.Collections.Concurrent;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;
using Prometheus;

namespace MtaSts.Actors.Admin;

/// <summary>
/// Prometheus metrics of a running gateway (text exposition at <c>/metrics</c>). Counters follow the operator log: every
/// event the gateway logs anyway (<see cref="MailLog.Written"/>) is counted here, so metrics and log never disagree and
/// the hot path gains no second bookkeeping. Gauges are read from the gateway when scraped.
/// </summary>
/// <remarks>Per-destination labels are bounded: the first <c>topDestinations</c> destinations seen get their own label,
/// later ones count as <c>_other</c> (10,000 domains must not make 10,000 series); queue gauges show the deepest
/// <c>topDestinations</c> destinations at each scrape plus a total.</remarks>
public sealed class GatewayMetrics : IDisposable
{
    private const string Other = "_other";
    private readonly Gateway _gateway;
    private readonly int _top;
    private readonly ConcurrentDictionary<string, byte> _labelled = new(StringComparer.Ordinal);
    private readonly Counter _received, _receivedBytes, _rejected, _delivered, _deferred, _bounced, _tls, _sts, _dane,
        _policyFetches, _connections, _refused, _authFailures, _authLockouts, _deliveryConnections, _throttled;
    private readonly Histogram _acceptSeconds, _fsyncSeconds, _commitBatch;
    private readonly RuntimeLagProbe _lagProbe;
    private readonly SegmentSpool? _localSpool;
    private readonly Gauge _queueRecipients, _queueOldest, _queueTotal, _spoolMessages, _spoolBytes, _sessions, _dataInFlight,
        _openDeliveryConnections, _budgetLimit, _budgetInUse, _budgetWaiting, _poolQueue, _poolThreads, _gcCommitted;
    private readonly Counter _gcPause, _poolCompleted, _lockContentions;
    private long _openConnections;

    public GatewayMetrics(Gateway gateway, int topDestinations)
    {
        _gateway = gateway;
        _top = topDestinations;
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        Counter C(string name, string help, params string[] labels) => f.CreateCounter(name, help, new CounterConfiguration { LabelNames = labels });
        Gauge G(string name, string help, params string[] labels) => f.CreateGauge(name, help, new GaugeConfiguration { LabelNames = labels });

        _received = C("mtasts_messages_received_total", "Messages accepted (250 after the spool fsync).");
        _receivedBytes = C("mtasts_received_bytes_total", "Octets of accepted messages.");
        _rejected = C("mtasts_messages_rejected_total", "Messages refused after DATA (size, line length, bare CR/LF/NUL, storage).");
        _delivered = C("mtasts_recipients_delivered_total", "Recipients delivered (receiver's 250).", "destination");
        _deferred = C("mtasts_recipients_deferred_total", "Recipient delivery attempts deferred, by enhanced status class.", "destination", "status_class");
        _bounced = C("mtasts_recipients_bounced_total", "Recipients bounced (DSN), by enhanced status class.", "destination", "status_class");
        _tls = C("mtasts_tls_sessions_total", "Outbound TLS outcomes: success, failed, required_failed (deferred), verify_failed, verify_report (testing/opportunistic).", "outcome");
        _sts = C("mtasts_sts_outcomes_total", "MTA-STS policy outcomes per delivery session: applied, success, skipped (DANE succeeded).", "result");
        _dane = C("mtasts_dane_outcomes_total", "DANE outcomes per delivery session.", "result");
        _policyFetches = C("mtasts_policy_fetches_total", "MTA-STS policy fetches (RFC 8461 §3.3), by result.", "result");
        _connections = C("mtasts_smtp_connections_total", "Inbound SMTP connections.");
        _refused = C("mtasts_smtp_connections_refused_total", "Inbound SMTP connections refused at connect (global or per-client limits).");
        _authFailures = C("mtasts_auth_failures_total", "Failed SMTP AUTH attempts.");
        _authLockouts = C("mtasts_auth_lockouts_total", "AUTH lockouts started (per address or per user name).");
        _deliveryConnections = C("mtasts_delivery_connections_total", "Outbound SMTP connections opened.");
        _throttled = C("mtasts_destination_throttled_total", "Reply-driven throttling rules fired (a receiver's reply lowered a destination's limits).", "destination", "rule");
        _acceptSeconds = f.CreateHistogram("mtasts_accept_commit_seconds",
            "From the final dot of DATA to the 250 (spool append + fsync, group-committed).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 14) });

        _fsyncSeconds = f.CreateHistogram("mtasts_spool_fsync_seconds",
            "Duration of the spool's group-commit fsync (single node; one fsync per batch of appends and done-marks).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16) });
        _commitBatch = f.CreateHistogram("mtasts_spool_commit_batch_operations",
            "Appends and done-marks made durable by one group-commit fsync (single node).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 13) });

        _queueRecipients = G("mtasts_queue_recipients", "Recipients queued for a destination (deepest destinations only; see _total).", "destination");
        _queueOldest = G("mtasts_queue_oldest_age_seconds", "Age of the oldest queued message of a destination (deepest destinations only).", "destination");
        _queueTotal = G("mtasts_queue_recipients_total", "Recipients queued for all destinations on this node.");
        _spoolMessages = G("mtasts_spool_messages", "Messages in the spool (at least one recipient outstanding).");
        _spoolBytes = G("mtasts_spool_bytes", "Size of the spool's segment files on disk.");
        _sessions = G("mtasts_smtp_sessions_active", "Inbound SMTP sessions connected.");
        _dataInFlight = G("mtasts_smtp_data_in_flight_bytes", "Message bytes received and not yet in the spool, all sessions.");
        _openDeliveryConnections = G("mtasts_delivery_connections_open", "Outbound SMTP connections open.");
        _budgetLimit = G("mtasts_delivery_connection_limit", "Outbound connections this node may have at once (mtasts.delivery.max-connections).");
        _budgetInUse = G("mtasts_delivery_connection_budget_in_use", "Outbound connections counted against the node's limit (opening, open or parked).");
        _budgetWaiting = G("mtasts_delivery_destinations_waiting", "Destinations with mail due waiting for a connection under the node's limit.");
        // The process and runtime: CPU, memory, GC collections per generation (prometheus-net's standard process_* and
        // dotnet_* series), and what the accept tail depends on — GC pauses and the thread pool's queue
        // (load-tests/README.md, "Accept latency: what the tail is made of").
        DotNetStats.Register(Registry);
        _gcPause = C("dotnet_gc_pause_seconds_total", "Time the garbage collector paused the process (GC.GetTotalPauseDuration).");
        _gcCommitted = G("dotnet_gc_committed_bytes", "Memory committed by the garbage collector (managed heap and its free space).");
        _poolQueue = G("dotnet_threadpool_queue_length", "Work items waiting in the .NET thread pool's queues.");
        _poolThreads = G("dotnet_threadpool_threads", "Thread-pool threads.");
        _poolCompleted = C("dotnet_threadpool_completed_items_total", "Work items the thread pool has run.");
        _lockContentions = C("dotnet_monitor_lock_contentions_total", "Times a thread waited for a lock (Monitor) another held.");
        var lagBuckets = new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 14) };
        var stall = f.CreateHistogram("mtasts_process_stall_seconds",
            "How late a thread sleeping 10 ms at a time woke (GC suspension, or no core free): sampled every 10 ms.", lagBuckets);
        var poolLag = f.CreateHistogram("mtasts_threadpool_lag_seconds",
            "How long a work item waited in the thread pool's queue before it ran (SMTP reads, spool commits and actors continue there): sampled every 10 ms.", lagBuckets);
        _lagProbe = new RuntimeLagProbe(stall.Observe, poolLag.Observe);
        Registry.AddBeforeCollectCallback(Refresh);
        gateway.Log.Written += OnLog;
        _localSpool = gateway.Spool as SegmentSpool; // the cluster spool commits in PostgreSQL, timed there
        if (_localSpool is not null) _localSpool.GroupCommitted += OnGroupCommit;
    }

    private void OnGroupCommit(TimeSpan fsync, int operations)
    {
        _fsyncSeconds.Observe(fsync.TotalSeconds);
        _commitBatch.Observe(operations);
    }

    public CollectorRegistry Registry { get; }

    private string Label(string? domain)
    {
        if (string.IsNullOrEmpty(domain)) return Other;
        if (_labelled.ContainsKey(domain)) return domain;
        if (_labelled.Count >= _top) return Other;
        _labelled.TryAdd(domain, 0);
        return domain;
    }

    private static object? Field(MailLogEntry e, string key)
    {
        foreach (var (k, v) in e.Fields) if (k == key) return v;
        return null;
    }

    /// <summary>"4.4.2 - …" / "5.1.1" → "4" / "5"; anything else → "other".</summary>
    private static string StatusClass(object? status) =>
        status is string { Length: > 0 } s && s[0] is '2' or '4' or '5' ? s[..1] : "other";

    private void OnLog(MailLogEntry e)
    {
        switch (e.Event)
        {
            case "mid_ready":
                _received.Inc();
                if (Field(e, "bytes") is long b) _receivedBytes.Inc(b);
                if (Field(e, "commit_ms") is double ms) _acceptSeconds.Observe(ms / 1000);
                break;
            case "mid_rejected": _rejected.Inc(); break;
            case "rcpt_delivered": _delivered.WithLabels(Label(Field(e, "domain") as string)).Inc(); break;
            case "rcpt_delayed":
                _deferred.WithLabels(Label(Field(e, "domain") as string), StatusClass(DetailStatus(e.Text))).Inc();
                break;
            case "rcpt_bounced": _bounced.WithLabels(Label(Field(e, "domain") as string), StatusClass(Field(e, "status"))).Inc(); break;
            case "tls_success": _tls.WithLabels("success").Inc(); break;
            case "tls_failed": _tls.WithLabels("failed").Inc(); break;
            case "tls_required_failed": _tls.WithLabels("required_failed").Inc(); break;
            case "tls_verify_failed": _tls.WithLabels("verify_failed").Inc(); break;
            case "tls_verify_report": _tls.WithLabels("verify_report").Inc(); break;
            case "mtasts_policy_applying": _sts.WithLabels("applied").Inc(); break;
            case "mtasts_success": _sts.WithLabels("success").Inc(); break;
            case "mtasts_skipped": _sts.WithLabels("skipped").Inc(); break;
            case "dane_success": _dane.WithLabels("success").Inc(); break;
            case "mtasts_policy_fetched": _policyFetches.WithLabels("success").Inc(); break;
            case "mtasts_policy_fetch_failure" or "mtasts_policy_fetch_connect_timeout": _policyFetches.WithLabels("failure").Inc(); break;
            case "icid_new": _connections.Inc(); break;
            case "icid_refused": _refused.Inc(); break;
            case "icid_auth_failed": _authFailures.Inc(); break;
            case "icid_auth_lockout": _authLockouts.Inc(); break;
            case "delivery_connection":
                _deliveryConnections.Inc();
                Interlocked.Increment(ref _openConnections);
                break;
            case "delivery_close": Interlocked.Decrement(ref _openConnections); break;
            case "destination_throttled": _throttled.WithLabels(Label(Field(e, "domain") as string), Field(e, "rule") as string ?? Other).Inc(); break;
        }
    }

    /// <summary>The enhanced status code that starts the detail of a "Delayed: … RID n - 4.4.2 - …" line.</summary>
    private static string? DetailStatus(string text)
    {
        int i = text.IndexOf(" - ", StringComparison.Ordinal);
        return i < 0 || i + 3 >= text.Length ? null : text[(i + 3)..];
    }

    private void Refresh()
    {
        var queue = QueueView.Summaries(_gateway.Pending, DateTimeOffset.UtcNow);
        _queueTotal.Set(queue.Sum(q => q.Recipients));
        // Series of destinations that dropped out of the top list are removed, so the gauge shows the top N only.
        foreach (var labels in _queueRecipients.GetAllLabelValues().ToArray())
        {
            _queueRecipients.RemoveLabelled(labels);
            _queueOldest.RemoveLabelled(labels);
        }
        foreach (var q in queue.OrderByDescending(q => q.Recipients).Take(_top))
        {
            _queueRecipients.WithLabels(q.Domain).Set(q.Recipients);
            _queueOldest.WithLabels(q.Domain).Set(q.OldestAge.TotalSeconds);
        }
        _spoolMessages.Set(_gateway.Spool.Count);
        _spoolBytes.Set(SpoolBytes());
        _sessions.Set(_gateway.ActiveSmtpSessions);
        _dataInFlight.Set(_gateway.SmtpDataInFlight);
        _openDeliveryConnections.Set(Math.Max(0, Interlocked.Read(ref _openConnections)));
        if (_gateway.ConnectionBudget is { } budget)
        {
            _budgetLimit.Set(budget.Limit);
            _budgetInUse.Set(budget.InUse);
            _budgetWaiting.Set(budget.Waiting);
        }
        _gcPause.IncTo(GC.GetTotalPauseDuration().TotalSeconds);
        _gcCommitted.Set(GC.GetGCMemoryInfo().TotalCommittedBytes);
        _poolQueue.Set(ThreadPool.PendingWorkItemCount);
        _poolThreads.Set(ThreadPool.ThreadCount);
        _poolCompleted.IncTo(ThreadPool.CompletedWorkItemCount);
        _lockContentions.IncTo(Monitor.LockContentionCount);
    }

    private long SpoolBytes()
    {
        try
        {
            return _gateway.SpoolDirectory is { } dir && Directory.Exists(dir)
                ? new DirectoryInfo(dir).EnumerateFiles("seg-*.log").Sum(f => f.Length)
                : 0;
        }
        catch (IOException) { return 0; } // a segment deleted while we looked
    }

    /// <summary>Running totals for the status page's charts.</summary>
    public StatsSnapshot Totals() => new(DateTimeOffset.UtcNow, true, (long)_received.Value, (long)Sum(_delivered), (long)Sum(_deferred),
        (long)Sum(_bounced), QueueView.Summaries(_gateway.Pending, DateTimeOffset.UtcNow).Sum(q => q.Recipients), _gateway.Spool.Count);

    /// <summary>With mtasts.admin.metrics = off nothing is counted: the queue and the spool only.</summary>
    public static StatsSnapshot TotalsWithoutMetrics(Gateway gateway) => new(DateTimeOffset.UtcNow, false, null, null, null, null,
        QueueView.Summaries(gateway.Pending, DateTimeOffset.UtcNow).Sum(q => q.Recipients), gateway.Spool.Count);

    private static double Sum(Counter c) => c.GetAllLabelValues().Sum(l => c.WithLabels(l).Value);

    public void Dispose()
    {
        _gateway.Log.Written -= OnLog;
        _lagProbe.Dispose();
        if (_localSpool is not null) _localSpool.GroupCommitted -= OnGroupCommit;
    }
}

/// <summary>What <c>/api/stats</c> returns.</summary>
public sealed record StatsSnapshot(DateTimeOffset At, bool Metrics, long? Received, long? Delivered, long? Deferred, long? Bounced, int QueueRecipients, int SpoolMessages);
