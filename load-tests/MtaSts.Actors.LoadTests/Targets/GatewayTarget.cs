using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// The MtaSts.Actors gateway, started as `dotnet &lt;dll&gt; serve --config &lt;run dir&gt;/gateway.loadtest.conf` (or any
/// command given with --gateway-cmd, placeholders {config} {listen} {port} {sink} {workdir}). The harness writes a
/// HOCON file that the host layers over its shipped hocon/*.conf: loopback listener, mx-override "*" → receiver,
/// default destination profile (connections, messages per connection, TLS off, MTA-STS switch), short retry schedule.
/// See load-tests/README.md ("Wiring the gateway").
/// <paramref name="cluster"/> (target <c>gateway-cluster</c>): the same gateway as ONE node in cluster mode — a private
/// PostgreSQL (tests/postgres/setup.sh) for the journal, snapshots (and the cluster spool once it exists), the shipped
/// hocon/cluster-postgres.conf and the node settings of <see cref="ClusterNodeConfig"/>, under the same load-test file.
/// <paramref name="clusterNodes"/> = 3 (target <c>gateway-cluster3</c>): two more nodes join that cluster (same database,
/// own data directory and listener); the traffic still enters through node 1, and each domain is delivered by its owner,
/// wherever the sharding put it (accept on node 1 → PostgreSQL → owner on any node).
/// </summary>
public sealed partial class GatewayTarget(int port, string? dllPath, string? commandTemplate, string repoRoot, bool cluster = false,
    int clusterNodes = 1) : ITarget
{
    public const string ClusterTargetName = "gateway-cluster";
    public const string Cluster3TargetName = "gateway-cluster3";
    private readonly List<Process> _extraNodes = [];
    private readonly List<(IPEndPoint Smtp, List<string> Args)> _extraSpecs = [];
    private MtaSts.Actors.TestInfra.Postgres.PostgresInstance? _postgres;
    private ProcessTreeSampler? _pgSampler;   // PostgreSQL is its own process tree: its CPU is not in the target's column
    private double _pgCpuAtStart;
    private Process? _process;
    private string? _statsFile;
    private string? _log;
    private string? _mailLog;
    private string? _dataDir;
    private bool _killed;
    private LocalMtaStsWorld? _mtaSts;
    private readonly Dictionary<string, string> _facts = new();

    public string Name => !cluster ? "gateway" : clusterNodes > 1 ? Cluster3TargetName : ClusterTargetName;
    public bool SupportsMtaSts => true;
    public IPEndPoint Endpoint { get; } = new(IPAddress.Loopback, port);
    public int? RootPid => _process is { HasExited: false } p ? p.Id : null;
    public IReadOnlyDictionary<string, string> Facts => _facts;

    public static string? FindDll(string repoRoot)
    {
        foreach (var cfg in new[] { "Release", "Debug" })
        {
            var p = Path.Combine(repoRoot, "src", "MtaSts.Actors.Host", "bin", cfg, "net10.0", "mtasts-gateway.dll");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    public async Task<string?> StartAsync(TargetSpec spec, CancellationToken ct)
    {
        var dir = Path.Combine(spec.WorkDirectory, Name);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        var config = Path.Combine(dir, "gateway.loadtest.conf");
        _statsFile = Path.Combine(dir, "stats.json");
        _log = Path.Combine(dir, "gateway.log");
        _mailLog = Path.Combine(dir, "gw-mail.log");
        _dataDir = Path.Combine(dir, "gw-data");
        var sink = spec.Routes.FirstOrDefault(r => r.Key == "*").Value ?? spec.Routes[0].Value;
        // Also for --gateway-cmd: the config written below names this world's DNS server and CA (without them a --tls
        // run delivered nothing: every MX certificate failed verification).
        if (spec.MtaSts || spec.LocalMtaSts)
        {
            // Policies for every destination served locally (DNS + HTTPS policy host + test CA). In mta-sts-everywhere
            // both variants get the same world (next hop by name through the local DNS); only mta-sts = on/off differs.
            _mtaSts = await LocalMtaStsWorld.StartAsync(spec.Domains, Path.Combine(dir, "mta-sts"), ct, spec.TlsCa);
            _facts["mta-sts policy"] = LocalMtaStsWorld.Policy.Replace("\n", " / ", StringComparison.Ordinal).Trim(' ', '/');
            _facts["mta-sts dns / https"] = $"{_mtaSts.Dns.EndPoint} / 127.0.0.1:{_mtaSts.Https.Port.ToString(CultureInfo.InvariantCulture)}";
        }
        await File.WriteAllTextAsync(config, ConfigHocon(spec, dir), ct);
        var configs = new List<string>();
        if (cluster)
        {
            if (!MtaSts.Actors.TestInfra.Postgres.PostgresInstance.IsAvailable)
                return "target not available: PostgreSQL is not installed (sudo tests/postgres/setup.sh)";
            // Durable (fsync, synchronous_commit, full_page_writes on): the 250 waits for a commit that survives a power
            // loss, as Postfix's and the single node's fsync'd queue files do — a benchmark against fsync=off would flatter.
            _postgres = await MtaSts.Actors.TestInfra.Postgres.PostgresInstance.StartAsync(ct, durable: true);
            var cs = await _postgres.CreateDatabaseAsync("mtasts_load", ct);
            var node = new ClusterNode(1, Endpoint.Port, TestInfra.Net.LoopbackPort.Free(), 0, 0, _dataDir!);
            List<ClusterNode> all = [node];
            for (var i = 2; i <= clusterNodes; i++)
                all.Add(new ClusterNode(i, TestInfra.Net.LoopbackPort.Free(), TestInfra.Net.LoopbackPort.Free(), 0, 0, Path.Combine(dir, $"node{i.ToString(CultureInfo.InvariantCulture)}-data")));
            var nodeConf = Path.Combine(dir, "cluster-node.conf");
            await File.WriteAllTextAsync(nodeConf, ClusterNodeConfig.Hocon(node, all, cs, sink.Port), ct);
            foreach (var n in all.Skip(1))
            {
                // The node file, the load-test file, then this node's own listener, data directory and mail log (the
                // load-test file names node 1's).
                Directory.CreateDirectory(n.DataDir);
                var idx = n.Index.ToString(CultureInfo.InvariantCulture);
                var conf = Path.Combine(dir, $"cluster-node{idx}.conf");
                await File.WriteAllTextAsync(conf, ClusterNodeConfig.Hocon(n, all, cs, sink.Port), ct);
                var own = Path.Combine(dir, $"cluster-node{idx}-own.conf");
                await File.WriteAllTextAsync(own, $"mtasts.data-dir = \"{n.DataDir}\"\nmtasts.listener.endpoints = [\"127.0.0.1:{n.SmtpPort.ToString(CultureInfo.InvariantCulture)}\"]\n" +
                    $"mtasts.log.text = \"{Path.Combine(dir, $"gw-mail-node{idx}.log")}\"\nmtasts.hostname = \"{n.Hostname}\"\n", ct);
                _extraSpecs.Add((new IPEndPoint(IPAddress.Loopback, n.SmtpPort), [.. ClusterNodeConfig.ConfigFiles(repoRoot), conf, config, own]));
            }
            // Order: cluster overlay, node file, then the load-test file (it wins: same listener, data dir, profiles
            // and retry schedule as the single-node run, so only the cluster mode differs).
            configs.AddRange(ClusterNodeConfig.ConfigFiles(repoRoot));
            configs.Add(nodeConf);
            if (File.Exists(Path.Combine(_postgres.DataDirectory, "postmaster.pid"))
                && int.TryParse(File.ReadLines(Path.Combine(_postgres.DataDirectory, "postmaster.pid")).FirstOrDefault(), out var pgPid))
            {
                _pgSampler = new ProcessTreeSampler(pgPid);
                _pgCpuAtStart = _pgSampler.Sample().CpuSeconds;
            }
            _facts["postgres"] = $"private PostgreSQL on 127.0.0.1:{_postgres.Port.ToString(CultureInfo.InvariantCulture)} (durable: fsync, synchronous_commit, full_page_writes on; {_postgres.DataDirectory})";
        }
        configs.Add(config);

        string file;
        List<string> args;
        if (commandTemplate is not null)
        {
            var cmd = commandTemplate.Replace("{config}", config, StringComparison.Ordinal).Replace("{listen}", Endpoint.ToString(), StringComparison.Ordinal)
                .Replace("{port}", Endpoint.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("{sink}", sink.ToString(), StringComparison.Ordinal).Replace("{workdir}", dir, StringComparison.Ordinal);
            file = "/bin/sh";
            args = ["-c", "exec " + cmd];
        }
        else
        {
            var dll = dllPath ?? FindDll(repoRoot);
            if (dll is null || !File.Exists(dll))
                return "target not available yet: mtasts-gateway.dll not found (dotnet build src/MtaSts.Actors.Host -c Release, or pass --gateway-dll/--gateway-cmd)";
            file = "dotnet";
            args = [dll, "serve", .. configs.SelectMany(c => new[] { "--config", c })];
            _facts["dll"] = dll;
        }

        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // run.sh tunes the harness's own runtime (workstation GC); the gateway runs with its shipped runtime settings
        // (the systemd unit's DOTNET_* lines; a --gateway-cmd "env VAR=…" still overrides them).
        psi.Environment.Remove("DOTNET_gcServer");
        psi.Environment.Remove("DOTNET_TieredPGO");
        var shipped = ShippedRuntimeSettings.Read(repoRoot);
        foreach (var (k, v) in shipped) psi.Environment[k] = v;
        _facts["runtime env (shipped unit)"] = shipped.Count == 0 ? "none" : string.Join(' ', shipped.Select(kv => kv.Key + "=" + kv.Value));
        // The host layers MTASTS_* environment variables over every config file: make sure none leaks in from the shell.
        foreach (var v in ClusterNodeConfig.ScrubbedEnvironment) psi.Environment.Remove(v);
        _facts["command"] = file + " " + string.Join(' ', args.Select(ProcessRunner.Quote));
        _facts["config"] = config;
        _facts["mail log"] = _mailLog;
        _facts["mta-sts"] = spec.MtaSts ? "on" : "off";
        _facts["mx-rollup-max-connections"] = spec.MxRollupMaxConnections?.ToString(CultureInfo.InvariantCulture) ?? "shipped default";
        _facts["limit-type"] = spec.PerMxIp ? "mx-ip" : "domain";
        _facts["mx-rollup"] = spec.MxRollup switch { true => "on", false => "off", null => "shipped default" };
        _facts["outbound tls"] = spec.TlsCa is null ? "none" : $"required-verify-hosted-domains (STARTTLS to {LocalMtaStsWorld.MxHost}, test CA)";
        _facts["metrics"] = spec.Metrics switch { true => "on", false => "off (mtasts.admin.metrics = off)", null => "on (default)" };

        _process = Process.Start(psi);
        if (_process is null) return "target not available yet: could not start " + file;
        var logWriter = new StreamWriter(_log) { AutoFlush = true };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (logWriter) logWriter.WriteLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (logWriter) logWriter.WriteLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        // Ready = the listener accepts and answers 220 (the spool is recovered and the cluster joined before that).
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline && !ct.IsCancellationRequested)
        {
            if (_process.HasExited)
            {
                await Task.Delay(200, CancellationToken.None);
                return $"target not available: `{_facts["command"]}` exited with code {_process.ExitCode} before answering 220 on {Endpoint}{LogTail()}".TrimEnd();
            }
            if (await BannerAsync(ct) is { } banner)
            {
                _facts["banner"] = banner;
                return await StartExtraNodesAsync(file, args[0], dir, ct);
            }
            await Task.Delay(200, ct);
        }
        await StopAsync();
        return $"target not available: gateway did not answer 220 on {Endpoint} within 60 s{LogTail()}";
    }

    /// <summary>gateway-cluster3: nodes 2.. join node 1's cluster; ready when each answers 220 (an Up member: the
    /// intake gate is closed before). Their output goes to node&lt;i&gt;.log in the run directory.</summary>
    private async Task<string?> StartExtraNodesAsync(string file, string dll, string dir, CancellationToken ct)
    {
        if (_extraSpecs.Count == 0) return null;
        foreach (var (smtp, configs) in _extraSpecs)
        {
            var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
            psi.ArgumentList.Add(dll);
            psi.ArgumentList.Add("serve");
            foreach (var c in configs) { psi.ArgumentList.Add("--config"); psi.ArgumentList.Add(c); }
            psi.Environment.Remove("DOTNET_gcServer");
            psi.Environment.Remove("DOTNET_TieredPGO");
            foreach (var (k, v) in ShippedRuntimeSettings.Read(repoRoot)) psi.Environment[k] = v;
            foreach (var v in ClusterNodeConfig.ScrubbedEnvironment) psi.Environment.Remove(v);
            var p = Process.Start(psi);
            if (p is null) return "target not available: could not start an extra cluster node";
            _extraNodes.Add(p);
            var w = new StreamWriter(Path.Combine(dir, $"node-{smtp.Port.ToString(CultureInfo.InvariantCulture)}.log")) { AutoFlush = true };
            p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (w) w.WriteLine(e.Data); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (w) w.WriteLine(e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
        }
        var deadline = DateTime.UtcNow.AddSeconds(120);
        foreach (var (smtp, _) in _extraSpecs)
        {
            while (await BannerAsync(ct, smtp) is null)
            {
                if (DateTime.UtcNow > deadline || _extraNodes.Any(p => p.HasExited))
                {
                    await StopAsync();
                    return $"target not available: cluster node on {smtp} did not answer 220 within 120 s";
                }
                await Task.Delay(300, ct);
            }
        }
        _facts["cluster nodes"] = $"{(_extraSpecs.Count + 1).ToString(CultureInfo.InvariantCulture)} (traffic enters through node 1 on {Endpoint}; " +
                                  $"the others listen on {string.Join(", ", _extraSpecs.Select(x => x.Smtp.ToString()))})";
        return null;
    }

    /// <summary>Connects, reads the greeting, sends QUIT. Returns the 220 line, or null when not (yet) ready.</summary>
    private async Task<string?> BannerAsync(CancellationToken ct, IPEndPoint? at = null)
    {
        var ep = at ?? Endpoint;
        try
        {
            using var c = new System.Net.Sockets.TcpClient();
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(5));
            await c.ConnectAsync(ep.Address, ep.Port, cts.Token);
            var stream = c.GetStream();
            using var reader = new StreamReader(stream, System.Text.Encoding.ASCII, false, 512, leaveOpen: true);
            var line = await reader.ReadLineAsync(cts.Token);
            if (line is null || !line.StartsWith("220", StringComparison.Ordinal)) return null;
            await stream.WriteAsync("QUIT\r\n"u8.ToArray(), cts.Token);
            return line;
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or OperationCanceledException)
        {
            if (ct.IsCancellationRequested) throw;
            return null;
        }
    }

    /// <summary>
    /// The HOCON layered over the shipped hocon/*.conf (`serve --config FILE`). Akka's parser: no ${...}
    /// substitutions, no comma after a closing brace — one key per line.
    /// </summary>
    private string ConfigHocon(TargetSpec spec, string dir)
    {
        static string Q(string v) => "\"" + v.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
        var inv = CultureInfo.InvariantCulture;
        var sb = new System.Text.StringBuilder();
        sb.AppendLine("# Written by the load-test harness (GatewayTarget); layered over the shipped hocon/*.conf.");
        sb.AppendLine("mtasts {");
        sb.AppendLine($"  data-dir = {Q(_dataDir!)}");
        sb.AppendLine("  hostname = \"gw.loadtest.invalid\"");
        sb.AppendLine($"  listener.endpoints = [{Q(Endpoint.ToString())}]");
        sb.AppendLine("  listener.max-sessions = 2000");
        sb.AppendLine("  admin.endpoints = [\"127.0.0.1:0\"]");
        if (spec.Metrics is { } metrics) sb.AppendLine($"  admin.metrics = {(metrics ? "on" : "off")}");
        sb.AppendLine("  listener.relay-networks = [\"127.0.0.0/8\", \"::1/128\"]");
        sb.AppendLine("  delivery {");
        // MX override: every domain (and any listed domain) goes to the receiver; no MX lookup. MTA-STS still applies.
        sb.AppendLine("    mx-override {");
        // With local MTA-STS the next hop is a host NAME (resolved through the local DNS) so that the policy's mx matches.
        foreach (var r in spec.Routes)
            sb.AppendLine($"      {Q(r.Key)} = {Q(_mtaSts is null ? Loopback.Require(r.Value).ToString() : $"{LocalMtaStsWorld.MxHost}:{Loopback.Require(r.Value).Port.ToString(inv)}")}");
        sb.AppendLine("    }");
        sb.AppendLine("    connection-idle-time = 2s");
        if (spec.MxRollup is { } rollup) sb.AppendLine($"    mx-rollup = {(rollup ? "on" : "off")}");
        if (spec.MxRollupMaxConnections is { } rollupMax) sb.AppendLine($"    mx-rollup-max-connections = {rollupMax.ToString(inv)}");
        sb.AppendLine("    connect-timeout = 5s");
        sb.AppendLine("  }");
        sb.AppendLine($"  log.text = {Q(_mailLog!)}");
        // Nothing may leave the box: DNS goes to the harness's local DNS server (mta-sts on, policies served locally)
        // or to a dead loopback port.
        sb.AppendLine(_mtaSts is null ? "  dns.servers = [\"127.0.0.1:9\"]" : $"  dns.servers = [{Q(_mtaSts.Dns.EndPoint.ToString())}]");
        if (_mtaSts is not null)
        {
            sb.AppendLine($"  policy.extra-ca-bundle = {Q(_mtaSts.CaBundle)}");
            sb.AppendLine($"  policy.https-port = {_mtaSts.Https.Port.ToString(inv)}");
        }
        sb.AppendLine("  dns.timeout = 1s");
        sb.AppendLine("  dns.retries = 0");
        sb.AppendLine("}");
        sb.AppendLine("mtasts.destinations.default {");
        sb.AppendLine($"  max-concurrent-connections = {spec.DestinationConcurrency.ToString(inv)}");
        sb.AppendLine($"  max-messages-per-connection = {spec.MessagesPerConnection.ToString(inv)}");
        if (spec.PerMxIp) sb.AppendLine("  limit-type = mx-ip");
        // --tls: STARTTLS must succeed and the MX certificate must verify (PKIX, the MX host name: hosted domains).
        sb.AppendLine(spec.TlsCa is null ? "  tls-support = none" : "  tls-support = required-verify-hosted-domains");
        sb.AppendLine($"  mta-sts = {(spec.MtaSts ? "on" : "off")}");
        sb.AppendLine("}");
        // The shipped example profiles (example.com, partner.example) do not match load-test domains (*.test).
        if (spec.RetryInterval is { } retry)
        {
            var s = Math.Max(1, (int)retry.TotalSeconds);
            sb.AppendLine("mtasts.bounce-profiles.default {");
            sb.AppendLine($"  initial-retry-interval = {s.ToString(inv)}s");
            sb.AppendLine($"  max-retry-interval = {(2 * s).ToString(inv)}s");
            sb.AppendLine("  retry-jitter = 0.1");
            // A backlog held for many minutes must not bounce: retries are cheap here and bounded by the run.
            sb.AppendLine("  max-retries = 10000");
            sb.AppendLine("  max-time-in-queue = 1d");
            sb.AppendLine("}");
        }
        return sb.ToString();
    }

    public long? QueueDepth()
    {
        // Optional: the gateway may write {"queued": N} to MTASTS_LOADTEST_STATS_FILE once a second.
        if (_statsFile is null || !File.Exists(_statsFile)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(_statsFile));
            return doc.RootElement.TryGetProperty("queued", out var q) && q.TryGetInt64(out var n) ? n : null;
        }
        catch (Exception ex) when (ex is IOException or JsonException) { return null; }
    }

    /// <summary>The gateway's "deliver now" (SIGUSR1): every deferred recipient is retried at once, as
    /// <c>postqueue -f</c> does for the Postfix target.</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        if (RootPid is not { } pid) return;
        await ProcessRunner.RunAsync("kill", ["-USR1", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
    }

    public async Task StopAsync()
    {
        foreach (var p in _extraNodes)
        {
            if (!p.HasExited)
            {
                await ProcessRunner.RunAsync("/bin/kill", ["-TERM", p.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(5));
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                try { await p.WaitForExitAsync(cts.Token); }
                catch (OperationCanceledException) { p.Kill(entireProcessTree: true); }
            }
            p.Dispose();
        }
        _extraNodes.Clear();
        await StopProcessAsync();
        if (_pgSampler is not null)
        {
            // Postmaster + live backends + the exited backends it reaped (cutime/cstime): PostgreSQL's share of the run.
            var pg = _pgSampler.Sample();
            _facts["postgres CPU"] = $"{(pg.CpuSeconds - _pgCpuAtStart).ToString("0.0", CultureInfo.InvariantCulture)} s over the run " +
                                     $"(not in the target CPU column); RSS now {(pg.RssBytes / 1048576.0).ToString("0", CultureInfo.InvariantCulture)} MB";
            _pgSampler = null;
        }
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
            _postgres = null;
        }
        if (_mtaSts is not null)
        {
            foreach (var kv in _mtaSts.Facts()) _facts[kv.Key] = kv.Value;
            await _mtaSts.DisposeAsync();
            _mtaSts = null;
        }
    }

    private async Task StopProcessAsync()
    {
        if (_process is null) return;
        if (!_process.HasExited)
        {
            await ReadRuntimeAsync();
            // SIGTERM first: a graceful stop is part of what the gateway must do; kill only if it hangs.
            var t0 = System.Diagnostics.Stopwatch.StartNew();
            await ProcessRunner.RunAsync("/bin/kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(5));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try { await _process.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                _killed = true;
                _facts["stop"] = "did not exit within 15 s of SIGTERM: killed";
            }
            _facts.TryAdd("stop", $"exited {t0.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s after SIGTERM (code {(_process.HasExited ? _process.ExitCode.ToString(CultureInfo.InvariantCulture) : "?")})");
        }
        _process.Dispose();
        _process = null;
    }

    /// <summary>
    /// What the stopped gateway still holds: a read-only scan of its spool (what a restart would recover), plus from its
    /// operator log the bounces ("Bounced: … MID m"), the DSNs generated for them ("MID x was generated for bounce of
    /// MID y") and DSNs dropped ("Double bounce: MID x").
    /// </summary>
    public Task<Core.TargetHoldings?> ReadHoldingsAsync(string runTag, IReadOnlySet<long> ourKeys, CancellationToken ct)
    {
        if (_dataDir is null || _mailLog is null) return Task.FromResult<Core.TargetHoldings?>(null);
        var log = _mailLog;
        var holdings = new Core.TargetHoldings
        {
            Source = $"gateway spool (read-only scan after {(_killed ? "SIGKILL" : "SIGTERM")}) + operator log",
            Explain = keys => ExplainFromLog(log, keys),
        };
        if (_process is not null) holdings.Error = "the gateway process was still running when its spool was read";
        try
        {
            var (held, warnings) = GatewaySpoolReader.Scan(Path.Combine(_dataDir, "spool"));
            var read = 0;
            foreach (var m in held)
            {
                var isDsn = m.ReversePath.Length == 0;
                long? id = null;
                // Ours by the MID in the 250 reply; read the rest (DSNs, anything the replies did not name), boundedly.
                if ((isDsn || !ourKeys.Contains(m.Mid)) && read++ < 50_000) id = GatewaySpoolReader.LoadIdOf(m, runTag);
                holdings.Held.Add(new Core.HeldMessage(m.Mid, isDsn, id));
            }
            if (warnings.Count > 0) _facts["spool scan"] = string.Join("; ", warnings.Take(5));
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            holdings.Error = "spool not readable: " + ex.Message;
        }
        try
        {
            if (File.Exists(log))
                foreach (var line in File.ReadLines(log))
                {
                    if (line.Contains("Bounced: ", StringComparison.Ordinal) && BouncedLine().Match(line) is { Success: true } b)
                        holdings.BouncedKeys.Add(long.Parse(b.Groups[1].Value, CultureInfo.InvariantCulture));
                    else if (line.Contains("was generated for bounce", StringComparison.Ordinal) && DsnLine().Match(line) is { Success: true } d)
                        holdings.DsnOf[long.Parse(d.Groups[1].Value, CultureInfo.InvariantCulture)] = long.Parse(d.Groups[2].Value, CultureInfo.InvariantCulture);
                    else if (line.Contains("Double bounce: ", StringComparison.Ordinal) && DoubleBounceLine().Match(line) is { Success: true } x)
                        holdings.DsnDropped.Add(long.Parse(x.Groups[1].Value, CultureInfo.InvariantCulture));
                }
            else holdings.Error ??= "operator log missing: " + log;
        }
        catch (IOException ex) { holdings.Error ??= "operator log not readable: " + ex.Message; }
        return Task.FromResult<Core.TargetHoldings?>(holdings);
    }

    /// <summary>Every operator-log line that names one of the MIDs (up to 20 each).</summary>
    private static IReadOnlyDictionary<long, IReadOnlyList<string>> ExplainFromLog(string log, IReadOnlyCollection<long> mids)
    {
        var want = mids.ToHashSet();
        var lines = new Dictionary<long, List<string>>();
        if (!File.Exists(log)) return new Dictionary<long, IReadOnlyList<string>>();
        foreach (var line in File.ReadLines(log))
        {
            if (!line.Contains("MID ", StringComparison.Ordinal)) continue;
            foreach (Match m in MidRef().Matches(line))
            {
                var mid = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
                if (!want.Contains(mid)) continue;
                if (!lines.TryGetValue(mid, out var list)) lines[mid] = list = [];
                if (list.Count < 20) list.Add(line);
                break;
            }
        }
        return lines.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)kv.Value);
    }

    /// <summary>The gateway's runtime over its whole run (start-up and warm-up included), from its own <c>/metrics</c>
    /// just before the SIGTERM (<see cref="GatewayAdmin.RuntimeLine"/>): what its latency tails depend on.</summary>
    private async Task ReadRuntimeAsync()
    {
        if (_mailLog is null || !File.Exists(_mailLog)) return;
        try
        {
            if (GatewayAdmin.Url(_mailLog) is not { } admin) return;
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var text = await http.GetStringAsync(new Uri(new Uri(admin), "metrics"));
            _facts[RuntimeFact] = GatewayAdmin.RuntimeLine(GatewayAdmin.ParseMetrics(text));
        }
        catch (Exception e) when (e is IOException or HttpRequestException or TaskCanceledException or UriFormatException)
        {
            _facts[RuntimeFact] = "not read: " + e.Message;
        }
    }

    /// <summary>Facts key of <see cref="ReadRuntimeAsync"/>'s line (the report's "gateway runtime" row).</summary>
    public const string RuntimeFact = "gateway runtime (whole run, its /metrics)";

    [GeneratedRegex(@"Bounced: DCID \S+ MID (\d+) to RID")]
    private static partial Regex BouncedLine();
    [GeneratedRegex(@"MID (\d+) was generated for bounce of MID (\d+)")]
    private static partial Regex DsnLine();
    [GeneratedRegex(@"Double bounce: MID (\d+)")]
    private static partial Regex DoubleBounceLine();
    [GeneratedRegex(@"\bMID (\d+)\b")]
    private static partial Regex MidRef();

    private string LogTail() => _log is not null && File.Exists(_log) ? "\n  " + string.Join("\n  ", File.ReadLines(_log).TakeLast(8)) : "";

    public async ValueTask DisposeAsync() => await StopAsync();
}
