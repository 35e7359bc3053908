using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// A private Postfix instance used as the baseline relay: its own config_directory and queue_directory under the
/// work directory, listening on 127.0.0.1:&lt;port&gt; only, every destination routed to the receiver through a
/// transport table (no DNS). Durability is left at Postfix's defaults (queue files fsync'd before the 250), so
/// the comparison with the gateway is like for like. The system instance (port 25) is never touched.
/// </summary>
public sealed partial class PostfixRelayTarget(int port) : ITarget
{
    private string? _configDir;
    private string? _queueDir;
    private string? _root;
    private long _lastQueueCount = -1;
    private long _lastQueueCountCostMs;
    private long _lastQueueSampleTicks;
    private readonly Dictionary<string, string> _facts = new();

    public string Name => "postfix";
    public bool SupportsMtaSts => false; // Postfix has no native MTA-STS; the flag is recorded and ignored.
    public IPEndPoint Endpoint { get; } = new(IPAddress.Loopback, port);
    public int? RootPid { get; private set; }
    public IReadOnlyDictionary<string, string> Facts => _facts;

    public static bool Installed => File.Exists("/usr/sbin/postfix") && File.Exists("/usr/sbin/postconf");

    public async Task<string?> StartAsync(TargetSpec spec, CancellationToken ct)
    {
        if (!Installed) return "postfix is not installed: run load-tests/setup.sh (as root)";
        if (Environment.UserName != "root") return "the private postfix instance must be started as root (postfix drops privileges itself)";
        _root = Path.Combine(spec.WorkDirectory, "postfix");
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
        _configDir = Path.Combine(_root, "etc");
        _queueDir = Path.Combine(_root, "queue");
        var dataDir = Path.Combine(_root, "data");
        Directory.CreateDirectory(_configDir);
        Directory.CreateDirectory(_queueDir);
        Directory.CreateDirectory(dataDir);
        await ProcessRunner.RunAsync("/bin/chown", ["postfix", dataDir], TimeSpan.FromSeconds(10));

        await File.WriteAllTextAsync(Path.Combine(_configDir, "transport"), TransportTable(spec), ct);
        await File.WriteAllTextAsync(Path.Combine(_configDir, "main.cf"), MainCf(spec, dataDir), ct);
        await File.WriteAllTextAsync(Path.Combine(_configDir, "master.cf"), MasterCf(), ct);

        var check = await ProcessRunner.RunAsync("/usr/sbin/postfix", ["-c", _configDir, "check"], TimeSpan.FromSeconds(30), viaTty: true);
        if (check.ExitCode != 0) return "postfix check failed: " + check.Output;
        var start = await ProcessRunner.RunAsync("/usr/sbin/postfix", ["-c", _configDir, "start"], TimeSpan.FromSeconds(30), viaTty: true);
        if (start.ExitCode != 0) return "postfix start failed: " + start.Output + MaillogTail();
        if (!await Loopback.WaitForListenerAsync(Endpoint, TimeSpan.FromSeconds(15), ct)) return "postfix did not open its port" + MaillogTail();
        var pidFile = Path.Combine(_queueDir, "pid", "master.pid");
        if (File.Exists(pidFile) && int.TryParse((await File.ReadAllTextAsync(pidFile, ct)).Trim(), out var pid)) RootPid = pid;
        var version = await ProcessRunner.RunAsync("/usr/sbin/postconf", ["-d", "-h", "mail_version"], TimeSpan.FromSeconds(10));
        _facts["version"] = "Postfix " + version.Output;
        _facts["config_directory"] = _configDir;
        _facts["durability"] = "default (queue file fsync before 250)";
        _facts["destination concurrency"] = spec.DestinationConcurrency.ToString(CultureInfo.InvariantCulture);
        _facts["messages per connection"] = spec.MessagesPerConnection.ToString(CultureInfo.InvariantCulture);
        if (spec.MtaSts) _facts["mta-sts"] = "requested but not supported by postfix: ignored";
        _facts["outbound tls"] = spec.TlsCaBundle is null ? "none" : $"verify, match={LocalMtaStsWorld.MxHost}, test CA, session cache, tlsproxy connection reuse";
        return null;
    }

    private static string TransportTable(TargetSpec spec)
    {
        var sb = new StringBuilder("# destination -> receiver (MX override for the load test)\n");
        foreach (var (pattern, ep) in spec.Routes)
            sb.Append(pattern).Append(" smtp:[").Append(ep.Address).Append("]:").Append(ep.Port).Append('\n');
        return sb.ToString();
    }

    /// <summary>`--tls`: verify the receiver's certificate against the run's CA, for the MX name (the transport goes to
    /// the address, so the name to match is given in the policy table); TLS sessions cached (tlsmgr) and TLS
    /// connections reused through tlsproxy (Postfix ≥ 3.4), as a tuned Postfix would run.</summary>
    private string TlsSettings(TargetSpec spec)
    {
        if (spec.TlsCaBundle is null) return "smtp_tls_security_level = none";
        var policy = new StringBuilder();
        foreach (var (_, ep) in spec.Routes)
            policy.Append('[').Append(ep.Address).Append("]:").Append(ep.Port).Append(" verify match=").Append(LocalMtaStsWorld.MxHost).Append('\n');
        File.WriteAllText(Path.Combine(_configDir!, "tls_policy"), policy.ToString());
        return $"""
            smtp_tls_security_level = verify
            smtp_tls_policy_maps = texthash:{_configDir}/tls_policy
            smtp_tls_CAfile = {spec.TlsCaBundle}
            smtp_tls_session_cache_database = btree:$data_directory/smtp_scache
            smtp_tls_connection_reuse = yes
            """;
    }

    private string MainCf(TargetSpec spec, string dataDir)
    {
        var retry = spec.RetryInterval is { } r
            ? $"""
              # Shortened retry schedule so deferred mail is retried within a bounded test.
              minimal_backoff_time = {Math.Max(1, (int)r.TotalSeconds)}s
              maximal_backoff_time = {Math.Max(2, (int)r.TotalSeconds * 2)}s
              queue_run_delay = {Math.Max(1, (int)r.TotalSeconds)}s
              """
            : "# retry schedule: Postfix defaults";
        return $"""
            # Generated by mtasts-load: a private, loopback-only relay instance used as the baseline.
            compatibility_level = 3.6
            queue_directory = {_queueDir}
            data_directory = {dataDir}
            mail_owner = postfix
            setgid_group = postdrop
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            myhostname = relay.loadtest.invalid
            mydomain = loadtest.invalid
            mydestination =
            local_transport = error:local delivery disabled
            alias_maps =
            alias_database =
            local_recipient_maps =
            relayhost =
            transport_maps = texthash:{_configDir}/transport
            mynetworks = 127.0.0.0/8
            smtpd_relay_restrictions = permit_mynetworks, reject
            smtpd_client_connection_count_limit = 1000
            default_process_limit = 200
            {TlsSettings(spec)}
            smtpd_tls_security_level = none
            smtp_dns_support_level = disabled
            default_destination_concurrency_limit = {spec.DestinationConcurrency}
            smtp_connection_reuse_count_limit = {spec.MessagesPerConnection}
            maillog_file = {_root}/maillog
            maillog_file_prefixes = {_root}
            biff = no
            {retry}
            """.Replace("\r", "", StringComparison.Ordinal) + "\n";
    }

    // chroot off: the private instance has no chroot jail set up, and chroot changes nothing that is measured.
    private string MasterCf() => $"""
        127.0.0.1:{Endpoint.Port} inet n - n - - smtpd
        pickup    unix  n - n 60 1 pickup
        cleanup   unix  n - n - 0 cleanup
        qmgr      unix  n - n 300 1 qmgr
        tlsmgr    unix  - - n 1000? 1 tlsmgr
        tlsproxy  unix  - - n - 0 tlsproxy
        rewrite   unix  - - n - - trivial-rewrite
        bounce    unix  - - n - 0 bounce
        defer     unix  - - n - 0 bounce
        trace     unix  - - n - 0 bounce
        verify    unix  - - n - 1 verify
        flush     unix  n - n 1000? 0 flush
        proxymap  unix  - - n - - proxymap
        proxywrite unix - - n - 1 proxymap
        smtp      unix  - - n - - smtp
        relay     unix  - - n - - smtp
        showq     unix  n - n - - showq
        error     unix  - - n - - error
        retry     unix  - - n - - error
        discard   unix  - - n - - discard
        anvil     unix  - - n - 1 anvil
        scache    unix  - - n - 1 scache
        postlog   unix-dgram n - n - 1 postlogd
        """.Replace("\r", "", StringComparison.Ordinal) + "\n";

    public long? QueueDepth()
    {
        if (_queueDir is null) return null;
        // Counting a million queue files takes a while; when it is expensive, sample it less often.
        var now = Environment.TickCount64;
        if (_lastQueueCount >= 0 && now - _lastQueueSampleTicks < _lastQueueCountCostMs * 5) return _lastQueueCount;
        long n = 0;
        foreach (var sub in new[] { "maildrop", "incoming", "active", "deferred", "hold" })
        {
            var dir = Path.Combine(_queueDir, sub);
            if (!Directory.Exists(dir)) continue;
            try { n += Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).LongCount(); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        _lastQueueCountCostMs = Environment.TickCount64 - now;
        _lastQueueSampleTicks = now;
        _lastQueueCount = n;
        return n;
    }

    public async Task FlushAsync(CancellationToken ct)
    {
        if (_configDir is null) return;
        await ProcessRunner.RunAsync("/usr/sbin/postqueue", ["-c", _configDir, "-f"], TimeSpan.FromSeconds(30), viaTty: true);
    }

    public async Task StopAsync()
    {
        if (_configDir is null) return;
        // Not deleted here: the executor reads the queue and maillog (end-state accounting), then deletes the run dir.
        await ProcessRunner.RunAsync("/usr/sbin/postfix", ["-c", _configDir, "stop"], TimeSpan.FromSeconds(30), viaTty: true);
        if (RootPid is { } pid)
        {
            for (var i = 0; i < 100 && Directory.Exists($"/proc/{pid}") && !IsZombie(pid); i++) await Task.Delay(100);
            if (Directory.Exists($"/proc/{pid}") && !IsZombie(pid))
                await ProcessRunner.RunAsync("/usr/sbin/postfix", ["-c", _configDir, "abort"], TimeSpan.FromSeconds(30), viaTty: true);
        }
        // The queue and maillog stay until the executor deletes the run directory: ReadHoldingsAsync reads them first.
        _configDir = null;
    }

    /// <summary>
    /// What the stopped instance still holds: every queue file (incoming, active, deferred, hold, maildrop; the file
    /// name is the queue id), plus from its maillog the bounces ("QID: to=<…>, … status=bounced") and the DSNs
    /// generated for them ("QID: sender non-delivery notification: DSNQID"). Queue files that are not one of the
    /// acknowledged messages (DSNs) are read with postcat for their X-Load-Id.
    /// </summary>
    public async Task<Core.TargetHoldings?> ReadHoldingsAsync(string runTag, IReadOnlySet<long> ourKeys, CancellationToken ct)
    {
        if (_queueDir is null || _root is null) return null;
        var maillog = Path.Combine(_root, "maillog");
        var holdings = new Core.TargetHoldings
        {
            Source = "Postfix queue files (after postfix stop) + maillog",
            Explain = keys => ExplainFromLog(maillog, keys),
        };
        try
        {
            var read = 0;
            foreach (var sub in new[] { "maildrop", "incoming", "active", "deferred", "hold", "corrupt" })
            {
                var dir = Path.Combine(_queueDir, sub);
                if (!Directory.Exists(dir)) continue;
                foreach (var file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
                {
                    var key = QueueKey.Parse(Path.GetFileName(file));
                    if (key != 0 && ourKeys.Contains(key) && sub != "maildrop")
                    {
                        holdings.Held.Add(new Core.HeldMessage(key, false, null));
                        continue;
                    }
                    // Not one of ours by its id: a DSN (null sender) or something else; read it (boundedly).
                    bool isDsn = false;
                    long? id = null;
                    if (read++ < 2_000)
                    {
                        var (code, text) = await ProcessRunner.RunAsync("/usr/sbin/postcat", ["-c", Path.Combine(_root, "etc"), "-e", "-h", "-b", file], TimeSpan.FromSeconds(10));
                        if (code == 0)
                        {
                            isDsn = NullSender().IsMatch(text);
                            id = Targets.GatewaySpoolReader.FindLoadId(text, runTag, headersOnly: false);
                        }
                    }
                    holdings.Held.Add(new Core.HeldMessage(key, isDsn, id));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            holdings.Error = "queue not readable: " + ex.Message;
        }
        try
        {
            if (File.Exists(maillog))
                foreach (var line in File.ReadLines(maillog))
                {
                    var m = LogLine().Match(line);
                    if (!m.Success) continue;
                    var qid = QueueKey.Parse(m.Groups[1].Value);
                    var rest = m.Groups[2].Value;
                    if (rest.StartsWith("to=<", StringComparison.Ordinal) && rest.Contains(" status=bounced", StringComparison.Ordinal)) holdings.BouncedKeys.Add(qid);
                    else if (NonDelivery().Match(rest) is { Success: true } n) holdings.DsnOf[QueueKey.Parse(n.Groups[1].Value)] = qid;
                }
            else holdings.Error ??= "maillog missing: " + maillog;
        }
        catch (IOException ex) { holdings.Error ??= "maillog not readable: " + ex.Message; }
        if (_configDir is not null) holdings.Error ??= "postfix was still running when its queue was read";
        return holdings;
    }

    private static IReadOnlyDictionary<long, IReadOnlyList<string>> ExplainFromLog(string maillog, IReadOnlyCollection<long> keys)
    {
        var want = keys.ToHashSet();
        var lines = new Dictionary<long, List<string>>();
        if (!File.Exists(maillog)) return new Dictionary<long, IReadOnlyList<string>>();
        foreach (var line in File.ReadLines(maillog))
        {
            var m = LogLine().Match(line);
            if (!m.Success) continue;
            var key = QueueKey.Parse(m.Groups[1].Value);
            if (!want.Contains(key)) continue;
            if (!lines.TryGetValue(key, out var list)) lines[key] = list = [];
            if (list.Count < 20) list.Add(line);
        }
        return lines.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)kv.Value);
    }

    [GeneratedRegex(@"postfix/[\w/-]+\[\d+\]: ([0-9A-F]{6,}): (.*)$")]
    private static partial Regex LogLine();
    [GeneratedRegex(@"^sender non-delivery notification: ([0-9A-F]{6,})")]
    private static partial Regex NonDelivery();
    [GeneratedRegex(@"(?m)^sender: *\r?$")]
    private static partial Regex NullSender();

    private static bool IsZombie(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal); }
        catch (IOException) { return true; }
    }

    private string MaillogTail()
    {
        var log = _root is null ? null : Path.Combine(_root, "maillog");
        return log is not null && File.Exists(log) ? "\n" + string.Join('\n', File.ReadLines(log).TakeLast(10)) : "";
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
