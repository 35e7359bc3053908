using System.Security.Cryptography;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.TlsRpt;

/// <summary>Queues a report message through the gateway's own spool and destinations (like a DSN), with the null
/// reverse-path: a report that cannot be delivered never produces a bounce.</summary>
public interface ITlsRptMailSubmitter
{
    Task SubmitAsync(string recipient, byte[] message, CancellationToken ct);
}

public sealed record TlsRptDomainResult(string Domain, string Outcome, string? ReportId, IReadOnlyList<string> Delivered,
    IReadOnlyList<string> Failed);

public sealed record TlsRptRunResult(DateOnly Day, IReadOnlyList<TlsRptDomainResult> Domains);

/// <summary>
/// TLS-RPT as a sending MTA: owns the durable counters (<see cref="TlsRptStore"/>), the hot-path recorder, and sends
/// one report per policy domain and UTC day — daily at <see cref="TlsRptOptions.SendHourUtc"/> for the previous day, and
/// on demand (<see cref="SendReportsAsync"/>, for the admin API/CLI). Report delivery runs on its own tasks with
/// bounded retries and never blocks mail.
/// </summary>
public sealed class TlsRptService : IAsyncDisposable
{
    private readonly TlsRptOptions _options;
    private readonly TlsRptStore _store;
    private readonly IDnsResolver _dns;
    private readonly ITlsRptMailSubmitter _mail;
    private readonly TlsRptHttpPoster _http;
    private readonly MailLog _log;
    private readonly TimeProvider _clock;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _runGate = new(1, 1);
    private Timer? _timer;
    private DateOnly _lastScheduledDay;
    private Task _scheduled = Task.CompletedTask;

    public TlsRptService(TlsRptOptions options, string node, TlsRptStore store, IDnsResolver dns, ITlsRptMailSubmitter mail,
        TlsRptHttpPoster http, MailLog log, TimeProvider clock)
    {
        _options = options;
        _store = store;
        _dns = dns;
        _mail = mail;
        _http = http;
        _log = log;
        _clock = clock;
        Submitter = options.Submitter ?? node.TrimEnd('.').ToLowerInvariant();
        From = options.FromAddress ?? $"noreply-tlsrpt@{Submitter}";
        Recorder = new TlsRptRecorder(store, node, log, options.FlushInterval);
    }

    public TlsRptRecorder Recorder { get; }
    public string Submitter { get; }
    public string From { get; }
    public TlsRptStore Store => _store;

    /// <summary>Starts the daily schedule (checked every minute).</summary>
    public void Start() => _timer = new Timer(_ => Tick(), null, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1));

    private void Tick()
    {
        var now = _clock.GetUtcNow();
        var yesterday = DateOnly.FromDateTime(now.UtcDateTime).AddDays(-1);
        if (now.Hour < _options.SendHourUtc || _lastScheduledDay == yesterday || !_scheduled.IsCompleted) return;
        _lastScheduledDay = yesterday;
        _scheduled = Task.Run(async () =>
        {
            try { await SendReportsAsync(yesterday, ct: _stop.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { }
            catch (Exception ex) { _log.Warning("tlsrpt_run_failed", $"TLS-RPT: daily report run for {yesterday:yyyy-MM-dd} failed: {ex.Message}"); }
        });
    }

    /// <summary>
    /// Sends the reports of <paramref name="day"/> (UTC) for every policy domain with recorded sessions that publishes a
    /// TLS-RPT record. Completes when every report was delivered or its attempts are exhausted. A complete day is
    /// reported once (remembered in the store, across restarts) unless <paramref name="force"/>; the current day can be
    /// reported on demand (its end-datetime is then "now") and is reported again in full once it is over.
    /// </summary>
    public async Task<TlsRptRunResult> SendReportsAsync(DateOnly day, bool force = false, CancellationToken ct = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _stop.Token);
        await _runGate.WaitAsync(linked.Token).ConfigureAwait(false);
        try
        {
            Recorder.Flush();
            var now = _clock.GetUtcNow();
            var start = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            var dayEnd = start.AddDays(1);
            var complete = now >= dayEnd;
            var end = complete ? dayEnd : new DateTimeOffset(now.UtcDateTime.Ticks / TimeSpan.TicksPerSecond * TimeSpan.TicksPerSecond, TimeSpan.Zero);
            var results = new List<Task<TlsRptDomainResult>>();
            foreach (var domain in _store.Domains(day))
            {
                if (!force && complete && _store.WasReported(domain, day)) continue;
                results.Add(ReportDomainAsync(domain, day, start, end, complete, linked.Token));
            }
            var done = await Task.WhenAll(results).ConfigureAwait(false);
            _store.Prune(DateOnly.FromDateTime(now.UtcDateTime).AddDays(-_options.KeepDays));
            _log.Info("tlsrpt_run", $"TLS-RPT: reports for {day:yyyy-MM-dd}: {done.Count(d => d.Outcome == "sent")} sent, " +
                $"{done.Count(d => d.Outcome == "failed")} failed, {done.Count(d => d.Outcome is not ("sent" or "failed"))} not sent (no record or nothing to report)",
                ("day", TlsRptStore.Day(day)));
            return new TlsRptRunResult(day, done);
        }
        finally
        {
            _runGate.Release();
        }
    }

    private async Task<TlsRptDomainResult> ReportDomainAsync(string domain, DateOnly day, DateTimeOffset start, DateTimeOffset end,
        bool complete, CancellationToken ct)
    {
        TlsRptDomainResult Result(string outcome, string? id = null, IReadOnlyList<string>? ok = null, IReadOnlyList<string>? failed = null)
        {
            if (complete && outcome != "dns-tempfail") _store.MarkReported(domain, day, id ?? "", outcome, _clock.GetUtcNow());
            return new(domain, outcome, id, ok ?? [], failed ?? []);
        }

        var counts = _store.Counts(domain, day);
        var total = counts.Sum(c => c.Sessions);
        if (total == 0) return Result("no-sessions");
        // RFC 8460 §3/§5.3: the SMTP session that delivers a report SHOULD NOT be included in the next report. Sessions
        // carrying our own report mail cannot be told apart from others at the session level, so a domain whose only
        // sessions could all have been report deliveries is not reported: otherwise a rua domain that receives nothing
        // but reports would get one report per day forever, each caused by the previous one.
        var ownReports = _store.ReportMails(domain, day);
        if (total <= ownReports)
        {
            _log.Debug("tlsrpt_skip_own", $"TLS-RPT: {domain} {day:yyyy-MM-dd}: {total} sessions, {ownReports} of our own report messages: not reported",
                ("domain", domain));
            return Result("only-own-reports");
        }

        var txt = await _dns.TxtAsync("_smtp._tls." + domain, ct).ConfigureAwait(false);
        if (txt.Outcome == DnsOutcome.TempFail)
        {
            _log.Info("tlsrpt_dns", $"TLS-RPT: TXT lookup of _smtp._tls.{domain} failed: {txt.Error}", ("domain", domain));
            return Result("dns-tempfail");
        }
        if (!txt.IsOk) return Result("no-record");
        var (record, error) = TlsRptRecordParser.Select(txt.Records);
        if (record is null)
        {
            if (error != "no TLS-RPT record")
                _log.Info("tlsrpt_record_invalid", $"TLS-RPT: _smtp._tls.{domain} not usable: {error}", ("domain", domain));
            return Result(error == "no TLS-RPT record" ? "no-record" : "invalid-record");
        }

        var id = $"{start:yyyy-MM-dd}_{domain}_{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}@{Submitter}";
        var report = new TlsRptReport(_options.OrganizationName, _options.ContactInfo, id, domain, start, end, counts);
        var gzip = report.ToGzip();
        var deliveries = record.Rua.Select(uri => DeliverAsync(report, uri, gzip, ct)).ToArray();
        var outcomes = await Task.WhenAll(deliveries).ConfigureAwait(false);
        var ok = outcomes.Where(o => o.Ok).Select(o => o.Uri).ToArray();
        var failed = outcomes.Where(o => !o.Ok).Select(o => o.Uri).ToArray();
        _log.Info("tlsrpt_report", $"TLS-RPT: report {id} for {domain} ({total} sessions) delivered to {ok.Length} of {outcomes.Length} rua" +
            (failed.Length > 0 ? $"; failed: {string.Join(", ", failed)}" : ""), ("domain", domain), ("report_id", id));
        return Result(ok.Length > 0 ? "sent" : "failed", id, ok, failed);
    }

    /// <summary>One rua: bounded attempts with exponential backoff (RFC 8460 §5.5), each failure logged.</summary>
    private async Task<(string Uri, bool Ok)> DeliverAsync(TlsRptReport report, Uri uri, byte[] gzip, CancellationToken ct)
    {
        var delay = _options.RetryInterval;
        for (var attempt = 1; ; attempt++)
        {
            string detail;
            try
            {
                if (uri.Scheme == Uri.UriSchemeMailto)
                {
                    var to = Uri.UnescapeDataString(uri.OriginalString[7..]);
                    var message = TlsRptMessage.Build(report, Submitter, From, to, _clock.GetUtcNow());
                    _store.AddReportMail(to[(to.LastIndexOf('@') + 1)..].ToLowerInvariant(), DateOnly.FromDateTime(_clock.GetUtcNow().UtcDateTime));
                    await _mail.SubmitAsync(to, message, ct).ConfigureAwait(false);
                    return (uri.ToString(), true);
                }
                var (ok, d) = await _http.PostAsync(uri, gzip, ct).ConfigureAwait(false);
                if (ok)
                {
                    _log.Info("tlsrpt_posted", $"TLS-RPT: report {report.ReportId} posted to {uri} ({d})", ("uri", uri.ToString()));
                    return (uri.ToString(), true);
                }
                detail = d;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { throw; }
            catch (Exception ex) { detail = ex.Message; }
            if (attempt >= _options.MaxAttempts)
            {
                _log.Warning("tlsrpt_delivery_failed", $"TLS-RPT: report {report.ReportId} to {uri}: attempt {attempt} of {_options.MaxAttempts} failed ({detail}); giving up",
                    ("uri", uri.ToString()));
                return (uri.ToString(), false);
            }
            _log.Info("tlsrpt_delivery_retry", $"TLS-RPT: report {report.ReportId} to {uri}: attempt {attempt} of {_options.MaxAttempts} failed ({detail}); retrying in {delay.TotalSeconds:0.#}s",
                ("uri", uri.ToString()));
            await Task.Delay(delay, _clock, ct).ConfigureAwait(false);
            delay += delay;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_timer is not null) await _timer.DisposeAsync().ConfigureAwait(false);
        _stop.Cancel();
        try { await _scheduled.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false); } catch (Exception) { }
        Recorder.Dispose();
        _store.Dispose();
        _stop.Dispose();
    }
}
