using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using MtaSts.Actors.LoadTests.Core;
using MtaSts.Actors.LoadTests.Receivers;
using MtaSts.Actors.LoadTests.Smtp;
using MtaSts.Actors.LoadTests.Targets;
using MtaSts.Actors.TestInfra.Net;

namespace MtaSts.Actors.ClusterChaos;

/// <summary>One message the generator offered to one node, and what that node answered.</summary>
internal sealed class Sent(long id, int node, string domain, TimeSpan at)
{
    public long Id { get; } = id;
    public int Node { get; } = node;
    public string Domain { get; } = domain;
    public TimeSpan At { get; } = at;
    /// <summary>-1 pending; 0 no reply (connection refused/lost, timeout: outcome unknown); else the final SMTP code.</summary>
    public volatile int Code = -1;
    public string Detail = "";
    public TimeSpan AckAt;
    public NodeHealth HealthAtAck;
    public bool Acked => Code == 250;
}

/// <summary>A never-seen domain sent through one node right after a fault: how long until it arrives.</summary>
internal sealed record Probe(string Label, int Via, string Domain, TimeSpan? Recovery, string Note, TimeSpan T0, TimeSpan Bound)
{
    /// <summary>When it missed the bound but arrived later (e.g. during the drain): the real time from the fault.</summary>
    public TimeSpan? Late { get; init; }
}

/// <summary>What one scenario measured.</summary>
internal sealed class ScenarioResult(string name, string title)
{
    public string Name { get; } = name;
    public string Title { get; } = title;
    public int Submitted, Acked, Unknown, UnknownDelivered, RefusedDelivered;
    public int Delivered, LostWhileDown, LostAtEnd, DupIds, ExtraCopies, Zombie250, StrandedThenDelivered;
    public Dictionary<int, Dictionary<string, int>> RefusalsByNode { get; } = [];
    public Dictionary<int, int> AckedByNode { get; } = [];
    public Dictionary<int, int> DeliveredByNode { get; } = [];
    public Dictionary<int, int> UndeliveredByAckingNode { get; } = [];
    public List<Probe> Probes { get; } = [];
    public List<string> Events { get; } = [];
    public List<string> Failures { get; } = [];
    public List<string> Notes { get; } = [];
    public long? LimitPeak;
    /// <summary>Seconds from the fault until the last acked message had arrived (recovery of the faulted node's domains).</summary>
    public double? AllDeliveredAfterFault;
    /// <summary>Longest time from a 250 to the message's first arrival at the receiver (seconds).</summary>
    public double MaxAckToDelivery;
    public TimeSpan Duration;
    public TimeSpan? ClusterFormed;
    public bool Passed => Failures.Count == 0;
}

/// <summary>
/// One scenario: a fresh database, a fresh counting receiver, 3 fresh gateway processes (node 1 started first; nodes 1
/// and 2 are the seeds with static seeds), load spread over the nodes and over many domains at a bounded rate, the
/// fault, fresh-domain probes, a drain while the faulted node stays down, then a drain after restarting every node
/// that is down or not an Up member, then SIGTERM for all.
/// </summary>
internal sealed class ScenarioRun(Options o, string scenario, string connectionString, string workDir)
{
    private const string LimitedDomain = "limited.test";
    private static readonly TimeSpan LimitDataDelay = TimeSpan.FromMilliseconds(300);
    private const int Workers = 12;
    private const long ProbeIdBase = 1_000_000;
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(120);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly string _runTag = "chaos" + scenario + Environment.TickCount64.ToString("x", CultureInfo.InvariantCulture);
    private readonly ConcurrentDictionary<long, Sent> _sent = new();
    private readonly ConcurrentDictionary<long, ConcurrentQueue<(TimeSpan At, string Helo)>> _arrivals = new();
    private readonly ConcurrentDictionary<string, TimeSpan> _firstArrivalByDomain = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<GatewayNode> _nodes = [];
    private readonly ConcurrentDictionary<int, DateTime> _avoidUntil = new();
    private ScenarioResult _r = null!;
    private DeliveryLedger _ledger = null!;
    private CountingReceiver _receiver = null!;
    private MessageFactory _factory = null!;
    private long _nextId, _nextProbeId = ProbeIdBase, _slot;
    private volatile bool _stopLoad;
    private TimeSpan _loadStart;
    private TimeSpan? _faultAt;

    private TimeSpan Now => _clock.Elapsed;
    private void Say(string s)
    {
        var line = $"[{scenario,-5} {Now.TotalSeconds,6:F1}s] {s}";
        Console.WriteLine(line);
        lock (_r.Events) _r.Events.Add(line);
    }

    public static string TitleOf(string s) => s switch
    {
        "a" => "(a) SIGKILL a non-seed node (node 3)",
        "b" => "(b) SIGKILL the node started first (node 1)",
        "c" => "(c) SIGSTOP node 2 beyond the failure detector, SIGCONT",
        "d" => "(d) rolling restart of every node",
        "limit" => "limit: max-concurrent-connections = 2 across 3 nodes",
        _ => s,
    };

    public async Task<ScenarioResult> RunAsync()
    {
        _r = new ScenarioResult(scenario, TitleOf(scenario));
        Directory.CreateDirectory(workDir);
        _ledger = new DeliveryLedger(_runTag, 2_000_000);
        _factory = new MessageFactory(_runTag, 1500);
        // limit: a slow receiver (every DATA answered after 300 ms) keeps the sessions of the limited domain open.
        var faults = scenario == "limit" ? new FaultPlan { DataDelay = LimitDataDelay, DataDelayShare = 1.0 } : FaultPlan.None;
        var receiverPort = LoopbackPort.Free();
        _receiver = new CountingReceiver(new IPEndPoint(IPAddress.Loopback, receiverPort), _ledger, faults) { ArrivalObserver = OnArrival };
        await _receiver.StartAsync(CancellationToken.None).ConfigureAwait(false);
        using var pollCts = new CancellationTokenSource();
        Task? poller = null;
        try
        {
            CreateNodes(receiverPort);
            if (!await StartClusterAsync().ConfigureAwait(false)) return _r;
            poller = PollLoopAsync(pollCts.Token);
            var load = Enumerable.Range(0, Workers).Select(w => Task.Run(() => WorkerAsync(w))).ToArray();
            _loadStart = Now;
            await Task.Delay(o.Before).ConfigureAwait(false);

            var probes = await FaultAsync().ConfigureAwait(false);

            _stopLoad = true;
            await Task.WhenAll(load).ConfigureAwait(false);
            await Task.WhenAll(probes).ConfigureAwait(false);
            _r.Probes.AddRange(probes.Select(p => p.Result));
            foreach (var p in _r.Probes) Say($"fresh domain {p.Label}: {(p.Recovery is { } t ? $"{t.TotalSeconds:F1}s" : "NOT delivered")} ({p.Note})");
            Say($"load stopped: {_sent.Count} offered, {_sent.Values.Count(s => s.Acked)} acked");

            // Drain 1: the faulted node (a, b) stays down; every acked message must still arrive.
            var downNodes = _nodes.Where(n => !n.Running).Select(n => n.Index).ToArray();
            // limit: 2 sessions, each DATA answered after 300 ms: the receiver takes at least acked × 0.15 s, by design.
            var drain1 = scenario == "limit"
                ? o.DrainWhileDown + TimeSpan.FromSeconds(15 + _sent.Values.Count(x => x.Acked) * LimitDataDelay.TotalSeconds / 2 * 1.5)
                : o.DrainWhileDown;
            var missing1 = await DrainAsync(drain1).ConfigureAwait(false);
            var missingIds = MissingAcked().Select(s => s.Id).ToHashSet();
            _r.LostWhileDown = missing1;
            Say(downNodes.Length > 0
                ? $"drain with node(s) {string.Join(",", downNodes)} down: {missing1} acked messages not delivered after {drain1.TotalSeconds:F0}s"
                : $"drain: {missing1} acked messages not delivered after {drain1.TotalSeconds:F0}s");

            // Drain 2: restart every node that is down or not an Up member (what an operator/systemd would do).
            // Skipped when nothing is missing and no node is a zombie: a killed node's return is exercised by d.
            if (missing1 > 0 || _nodes.Any(n => n.Running && n.Health == NodeHealth.NotUp))
            {
                foreach (var n in _nodes.Where(n => !n.Running || n.Health is NodeHealth.NotUp))
                {
                    var why = n.Running ? "not an Up member" : $"exited ({n.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? "?"})";
                    if (n.Running) Say($"node {n.Index}: {why} → {await n.TerminateAsync(TimeSpan.FromSeconds(20)).ConfigureAwait(false)}");
                    n.Start();
                    Say($"node {n.Index}: restarted ({why}), pid {n.Pid}");
                }
                foreach (var n in _nodes.Where(n => n.Running))
                    if (!await n.WaitListeningAsync(StartBound).ConfigureAwait(false)) _r.Failures.Add($"node {n.Index} did not listen again after restart");
                var missing2 = await DrainAsync(o.DrainAfterRestart).ConfigureAwait(false);
                _r.StrandedThenDelivered = missingIds.Count(id => _arrivals.ContainsKey(id));
                Say($"after restarts: {missing2} acked messages still not delivered ({_r.StrandedThenDelivered} of the {missing1} arrived only now)");
            }
            // Late duplicates: a short quiet period before counting.
            await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _r.Failures.Add("harness error: " + ex.Message);
            Say("harness error: " + ex);
        }
        finally
        {
            _stopLoad = true;
            pollCts.Cancel();
            if (poller is not null) { try { await poller.ConfigureAwait(false); } catch (OperationCanceledException) { } }
            foreach (var n in _nodes)
            {
                var how = await n.TerminateAsync(TimeSpan.FromSeconds(20)).ConfigureAwait(false);
                Say($"node {n.Index} stop: {how}");
            }
            await _receiver.StopAsync().ConfigureAwait(false);
        }
        Account();
        _r.Duration = Now;
        return _r;
    }

    // ---- cluster -----------------------------------------------------------------------------------------------

    private void CreateNodes(int receiverPort)
    {
        var specs = Enumerable.Range(1, 3).Select(i => new ClusterNode(i, LoopbackPort.Free(), LoopbackPort.Free(), LoopbackPort.Free(),
            LoopbackPort.Free(), Path.Combine(workDir, $"node{i}"))).ToList();
        var extra = o.NodeExtra;
        if (scenario == "limit")
            extra += $"\nmtasts {{ destinations {{ \"{LimitedDomain}\" {{ max-concurrent-connections = 2 }} }} }}\n";
        var runtime = ShippedRuntimeSettings.Read(o.RepoRoot);
        foreach (var s in specs)
        {
            Directory.CreateDirectory(s.DataDir);
            var conf = Path.Combine(workDir, $"node{s.Index}.conf");
            File.WriteAllText(conf, ClusterNodeConfig.Hocon(s, specs, connectionString, receiverPort, o.Bootstrap, extra));
            var files = ClusterNodeConfig.ConfigFiles(o.RepoRoot, o.ClusterConf).Append(conf).ToList();
            _nodes.Add(new GatewayNode(s, o.GatewayDll, files, workDir, () => _clock.Elapsed, runtime));
        }
    }

    /// <summary>Static seeds: node 1 first (only the first seed can form a cluster), then 2 and 3. Bootstrap: all three
    /// at once, node 3 first (no node is special). All must listen, then one message through each node must arrive.</summary>
    private async Task<bool> StartClusterAsync()
    {
        if (o.Bootstrap == ClusterBootstrap.Management)
        {
            foreach (var n in _nodes.AsEnumerable().Reverse()) n.Start();
            Say($"bootstrap: started nodes 3, 2, 1 at once (pids {_nodes[2].Pid}, {_nodes[1].Pid}, {_nodes[0].Pid})");
        }
        else
        {
            _nodes[0].Start();
            await Task.Delay(1000).ConfigureAwait(false);
            _nodes[1].Start();
            _nodes[2].Start();
            Say($"started node 1 (pid {_nodes[0].Pid}), then nodes 2, 3 (pids {_nodes[1].Pid}, {_nodes[2].Pid})");
        }
        foreach (var n in _nodes)
        {
            if (await n.WaitListeningAsync(StartBound).ConfigureAwait(false)) continue;
            _r.Failures.Add($"harness: node {n.Index} did not answer 220 within {StartBound.TotalSeconds:F0}s (see node{n.Index}-1.out)");
            return false;
        }
        Say("all 3 listen; warm-up message through each node");
        var warm = await Task.WhenAll(_nodes.Select(n => ProbeAsync($"warm-up via node {n.Index}", n, $"warm{n.Index}.chaos.test", Now, StartBound))).ConfigureAwait(false);
        foreach (var p in warm.Where(p => p.Recovery is null))
        {
            _r.Failures.Add($"harness: {p.Label}: not delivered within {StartBound.TotalSeconds:F0}s ({p.Note})");
            return false;
        }
        _r.ClusterFormed = Now;
        Say($"cluster delivers through every node ({string.Join(", ", warm.Select(p => $"node {p.Via} {p.Recovery!.Value.TotalSeconds:F1}s"))})");
        return true;
    }

    private async Task PollLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await Task.WhenAll(_nodes.Select(n => n.PollAsync())).ConfigureAwait(false);
            // systemd (Restart=on-failure) / Kubernetes: a gateway that exited by itself (exit 4: downed by its
            // cluster, README) is started again; a node the test SIGKILLed or SIGTERMed stays down.
            foreach (var n in _nodes)
                if (n.RestartIfExitedOnItsOwn() is { } code)
                    Say($"node {n.Index}: exited by itself (code {code.ToString(CultureInfo.InvariantCulture)}) → restarted as its supervisor would, pid {n.Pid}");
            await Task.Delay(500, ct).ConfigureAwait(false);
        }
    }

    // ---- faults ------------------------------------------------------------------------------------------------

    private async Task<List<Task<Probe>>> FaultAsync()
    {
        var probes = new List<Task<Probe>>();
        var n1 = _nodes[0]; var n2 = _nodes[1]; var n3 = _nodes[2];
        Task<Probe> Fresh(string label, GatewayNode via, TimeSpan t0, TimeSpan? bound = null) =>
            ProbeAsync(label, via, $"fresh-{scenario}-{probes.Count + 1}-{_runTag}.test", t0, bound ?? o.ProbeBound);
        switch (scenario)
        {
            case "a":
            case "b":
            {
                var victim = scenario == "a" ? n3 : n1;
                var t0 = Now;
                _faultAt = t0;
                victim.Kill();
                Say($"SIGKILL node {victim.Index} (pid gone; {Acked(victim.Index)} messages it acked so far)");
                foreach (var n in _nodes.Where(n => n != victim)) probes.Add(Fresh($"after SIGKILL node {victim.Index}, via node {n.Index}", n, t0));
                await Task.Delay(o.After).ConfigureAwait(false);
                break;
            }
            case "c":
            {
                var t0 = Now;
                _faultAt = t0;
                n2.Pause();
                Say($"SIGSTOP node 2 for {o.StopSeconds:F0}s");
                probes.Add(Fresh("after SIGSTOP node 2, via node 1", n1, t0));
                probes.Add(Fresh("after SIGSTOP node 2, via node 3", n3, t0));
                await Task.Delay(TimeSpan.FromSeconds(o.StopSeconds)).ConfigureAwait(false);
                n2.Resume();
                var t1 = Now;
                Say($"SIGCONT node 2 (health before: {n1.Health} / {n3.Health} for nodes 1 / 3)");
                // Not a stall of the survivors: a node the others removed while it was stopped cannot rejoin with the
                // same actor system; it downs itself, exits 4 and is restarted by its supervisor (emulated by the poll
                // loop) before it takes mail again. Bounded by the node start bound, reported as the node's return time.
                probes.Add(Fresh("after SIGCONT, via the resumed node 2 (back in service)", n2, t1, StartBound));
                probes.Add(Fresh("after SIGCONT, via node 1", n1, t1));
                // At least 30 s of load after SIGCONT: a resumed node that was downed meanwhile may down itself ~20 s
                // later (split-brain resolver) and must not keep answering 250 then.
                await Task.Delay(o.After > TimeSpan.FromSeconds(30) ? o.After : TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                break;
            }
            case "d":
                _faultAt = Now;
                foreach (var n in _nodes)
                {
                    var t0 = Now;
                    var how = await n.TerminateAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                    Say($"rolling: node {n.Index} {how}");
                    var other = _nodes[n.Index % 3];
                    probes.Add(Fresh($"node {n.Index} restarting, via node {other.Index}", other, t0));
                    n.Start();
                    var up = await n.WaitListeningAsync(StartBound).ConfigureAwait(false);
                    // As an operator would: the next node only goes once this one is an Up member again.
                    var upUntil = Now + StartBound;
                    while (up && n.Health != NodeHealth.Up && Now < upUntil) await Task.Delay(200).ConfigureAwait(false);
                    Say($"rolling: node {n.Index} restarted (pid {n.Pid}), listening: {up}, {n.Health} {(Now - t0).TotalSeconds:F1}s after its SIGTERM");
                    if (!up) _r.Failures.Add($"node {n.Index} did not listen after its rolling restart");
                    probes.Add(Fresh($"node {n.Index} back, via node {n.Index}", n, Now));
                    await Task.Delay(TimeSpan.FromSeconds(o.Quick ? 3 : 8)).ConfigureAwait(false);
                }
                await Task.Delay(o.Quick ? TimeSpan.FromSeconds(2) : o.After).ConfigureAwait(false);
                break;
            case "limit":
                Say($"traffic for {LimitedDomain} through all 3 nodes");
                await Task.Delay(o.After).ConfigureAwait(false);
                break;
        }
        return probes;
    }

    // ---- load --------------------------------------------------------------------------------------------------

    private string DomainOf(long id) => scenario == "limit"
        ? LimitedDomain
        : $"d{((id * 7919) % 40).ToString("00", CultureInfo.InvariantCulture)}.chaos.test";

    private async Task WorkerAsync(int worker)
    {
        var clients = new SmtpLoadClient?[_nodes.Count];
        try
        {
            while (!_stopLoad)
            {
                // Bounded rate over all workers: message k is due at start + k / rate.
                var slot = Interlocked.Increment(ref _slot);
                var due = _loadStart + TimeSpan.FromSeconds(slot / o.Rate);
                var wait = due - Now;
                if (wait > TimeSpan.Zero) await Task.Delay(wait).ConfigureAwait(false);
                if (_stopLoad) break;
                var id = Interlocked.Increment(ref _nextId);
                if (id > o.Messages) break;
                // Round-robin over the nodes; a node that just refused or timed out is skipped for 3 s (as a client
                // with several MX hosts would), so one stopped node does not tie up every worker.
                var node = _nodes[(int)((id - 1) % _nodes.Count)];
                for (var k = 0; k < _nodes.Count && _avoidUntil.TryGetValue(node.Index, out var until) && until > DateTime.UtcNow; k++)
                    node = _nodes[node.Index % _nodes.Count];
                await SendAsync(clients, node, id, DomainOf(id)).ConfigureAwait(false);
            }
        }
        finally
        {
            foreach (var c in clients) if (c is not null) await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Offers message <paramref name="id"/> to <paramref name="node"/> on the worker's connection to it.</summary>
    private async Task<Sent> SendAsync(SmtpLoadClient?[] clients, GatewayNode node, long id, string domain)
    {
        var s = new Sent(id, node.Index, domain, Now);
        _sent[id] = s;
        var nowUs = Clock.NowUs();
        _ledger.Submitted(id, nowUs, measuring: true);
        var slot = node.Index - 1;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            if (clients[slot] is null or { Broken: true })
            {
                if (clients[slot] is { } old) await old.DisposeAsync().ConfigureAwait(false);
                clients[slot] = null;
                using var ccts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                var (client, reply) = await SmtpLoadClient.ConnectAsync(node.Smtp, "loadgen.chaos.test", ccts.Token).ConfigureAwait(false);
                if (client is null) return Refused(s, reply.Code, reply.Code == 0 ? "connect refused" : $"{reply.Code} at banner/EHLO", reply.Text);
                clients[slot] = client;
            }
            var rcpt = $"user{id % 17}@{domain}";
            var final = await clients[slot]!.SendAsync(MessageFactory.Sender, rcpt, buf =>
            {
                var b = buf;
                var len = _factory.Write(id, rcpt, nowUs, ref b);
                return (len, b);
            }, cts.Token).ConfigureAwait(false);
            if (final.Code == 250)
            {
                s.HealthAtAck = node.Health;
                s.AckAt = Now;
                s.Code = 250;
                _ledger.Accepted(id);
                if (s.HealthAtAck == NodeHealth.NotUp) Say($"250 from node {node.Index} while its last health poll said not an Up member (id {id}; judged by the polls around it)");
                return s;
            }
            return Refused(s, final.Code, final.Code == 0 ? "connection lost" : final.Code.ToString(CultureInfo.InvariantCulture), final.Text);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            if (clients[slot] is { } c) { try { await c.DisposeAsync().ConfigureAwait(false); } catch (Exception) { } }
            clients[slot] = null;
            return Refused(s, 0, ex is OperationCanceledException ? "timeout" : "connection lost", ex.GetType().Name);
        }
    }

    private Sent Refused(Sent s, int code, string kind, string text)
    {
        s.Detail = $"{kind}: {text}";
        s.Code = code;
        if (code is 0 or 421) _avoidUntil[s.Node] = DateTime.UtcNow.AddSeconds(3);
        lock (_r.RefusalsByNode)
        {
            if (!_r.RefusalsByNode.TryGetValue(s.Node, out var d)) _r.RefusalsByNode[s.Node] = d = [];
            d[kind] = d.GetValueOrDefault(kind) + 1;
        }
        return s;
    }

    /// <summary>Sends one message for a never-seen domain through <paramref name="via"/> (again every 500 ms until a 250),
    /// then waits for it at the receiver: the time from <paramref name="t0"/> (the fault) to its arrival.</summary>
    private async Task<Probe> ProbeAsync(string label, GatewayNode via, string domain, TimeSpan t0, TimeSpan bound)
    {
        var clients = new SmtpLoadClient?[_nodes.Count];
        var tries = 0;
        var last = "";
        try
        {
            while (Now - t0 < bound)
            {
                if (_firstArrivalByDomain.TryGetValue(domain, out var at)) return new Probe(label, via.Index, domain, at - t0, $"{tries} submission(s)", t0, bound);
                if (!_sent.Values.Any(x => x.Domain == domain && x.Acked))
                {
                    tries++;
                    var s = await SendAsync(clients, via, Interlocked.Increment(ref _nextProbeId), domain).ConfigureAwait(false);
                    if (!s.Acked) last = s.Detail;
                }
                await Task.Delay(250).ConfigureAwait(false);
            }
            return new Probe(label, via.Index, domain, null,
                _sent.Values.Any(x => x.Domain == domain && x.Acked) ? "acked, not delivered in time" : $"never acked ({tries} tries; last: {last})", t0, bound);
        }
        finally
        {
            foreach (var c in clients) if (c is not null) await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void OnArrival(long id, string helo, string domain)
    {
        var now = Now;
        _arrivals.GetOrAdd(id, _ => new ConcurrentQueue<(TimeSpan, string)>()).Enqueue((now, helo));
        if (domain.Length > 0) _firstArrivalByDomain.TryAdd(domain, now);
    }

    // ---- accounting --------------------------------------------------------------------------------------------

    private int Acked(int node) => _sent.Values.Count(s => s.Node == node && s.Acked);

    private IEnumerable<Sent> MissingAcked() => _sent.Values.Where(s => s.Acked && !_arrivals.ContainsKey(s.Id));

    private async Task<int> DrainAsync(TimeSpan bound)
    {
        var until = Now + bound;
        while (Now < until)
        {
            if (!MissingAcked().Any()) return 0;
            await Task.Delay(250).ConfigureAwait(false);
        }
        return MissingAcked().Count();
    }

    private static int NodeOfHelo(string helo) =>
        helo.StartsWith("node", StringComparison.Ordinal) && helo.Length > 4 && char.IsDigit(helo[4]) ? helo[4] - '0' : 0;

    private void Account()
    {
        var all = _sent.Values.ToArray();
        _r.Submitted = all.Length;
        _r.Acked = all.Count(s => s.Acked);
        _r.Unknown = all.Count(s => s.Code == 0);
        _r.UnknownDelivered = all.Count(s => s.Code == 0 && _arrivals.ContainsKey(s.Id));
        _r.RefusedDelivered = all.Count(s => s.Code is > 0 and not 250 && _arrivals.ContainsKey(s.Id));
        _r.Delivered = all.Count(s => s.Acked && _arrivals.ContainsKey(s.Id));
        _r.LostAtEnd = _r.Acked - _r.Delivered;
        foreach (var (id, q) in _arrivals)
        {
            if (q.Count > 1) { _r.DupIds++; _r.ExtraCopies += q.Count - 1; }
            foreach (var (_, helo) in q) _r.DeliveredByNode[NodeOfHelo(helo)] = _r.DeliveredByNode.GetValueOrDefault(NodeOfHelo(helo)) + 1;
        }
        foreach (var s in all.Where(s => s.Acked))
        {
            _r.AckedByNode[s.Node] = _r.AckedByNode.GetValueOrDefault(s.Node) + 1;
            if (!_arrivals.ContainsKey(s.Id)) _r.UndeliveredByAckingNode[s.Node] = _r.UndeliveredByAckingNode.GetValueOrDefault(s.Node) + 1;
        }
        // A 250 counts against the node when every health poll from 1 s before the transaction to 1 s after its 250 said
        // "not an Up member" (or gone): one poll every 500 ms, so a single stale poll (the gate closed and reopened within
        // it, or the answer arrived late on a loaded machine) is not enough.
        bool Zombie(Sent s) => s.Acked && s.HealthAtAck == NodeHealth.NotUp && _nodes[s.Node - 1].NotUpThroughout(s.At, s.AckAt);
        _r.Zombie250 = all.Count(Zombie);
        var firsts = all.Where(s => s.Acked && _arrivals.ContainsKey(s.Id))
            .Select(s => (s, First: _arrivals[s.Id].Min(a => a.At))).ToArray();
        if (firsts.Length > 0)
        {
            _r.MaxAckToDelivery = firsts.Max(x => (x.First - x.s.AckAt).TotalSeconds);
            if (_faultAt is { } f) _r.AllDeliveredAfterFault = Math.Max(0, (firsts.Max(x => x.First) - f).TotalSeconds);
        }
        var staleOnly = all.Count(s => s.Acked && s.HealthAtAck == NodeHealth.NotUp) - _r.Zombie250;
        var peerUnreachable = all.Count(s => s.Acked && s.HealthAtAck == NodeHealth.PeerUnreachable);
        if (peerUnreachable > 0)
            _r.Notes.Add($"{peerUnreachable} 250s while the node's last poll said it saw an unreachable member (its gate passed the " +
                         "message before it closed; the message was already in the cluster spool: " +
                         $"{all.Count(s => s.Acked && s.HealthAtAck == NodeHealth.PeerUnreachable && _arrivals.ContainsKey(s.Id))} of them delivered)");
        if (staleOnly > 0)
            _r.Notes.Add($"{staleOnly} 250s came while the node's last poll said not Up, but a poll within 1 s of the transaction said otherwise (not counted)");
        if (_r.Zombie250 > 0)
            _r.Notes.Add($"250s while not an Up member, by node: " + string.Join(" ", all.Where(Zombie)
                .GroupBy(s => s.Node).OrderBy(g => g.Key).Select(g => $"{g.Key}:{g.Count()} ({g.Count(s => _arrivals.ContainsKey(s.Id))} of them delivered)")));
        foreach (var n in _nodes)
            _r.Notes.Add($"node {n.Index} health: " + string.Join(" → ", n.Timeline.Select(t => $"{t.At.TotalSeconds:F0}s {t.State}" +
                (t.State is NodeHealth.NotUp or NodeHealth.PeerUnreachable or NodeHealth.Exited ? $" ({t.Detail})" : ""))));
        if (scenario == "limit")
        {
            _r.LimitPeak = _receiver.PeakConcurrentSessions(LimitedDomain);
            if (_r.LimitPeak > 2) _r.Failures.Add($"peak concurrent sessions for {LimitedDomain} at the receiver = {_r.LimitPeak} > 2");
            if (_r.LimitPeak == 0) _r.Failures.Add($"no session for {LimitedDomain} reached the receiver");
        }
        if (_r.Acked == 0) _r.Failures.Add("nothing was acked");
        if (_r.LostWhileDown > 0)
            _r.Failures.Add($"{_r.LostWhileDown} acked messages not delivered while the faulted node stayed down / within the drain");
        if (_r.LostAtEnd > 0) _r.Failures.Add($"{_r.LostAtEnd} acked messages never delivered (LOST), even after restarts");
        if (_r.Zombie250 > 0) _r.Failures.Add($"{_r.Zombie250} messages got a 250 from a node that was not an Up member");
        for (var i = 0; i < _r.Probes.Count; i++)
        {
            var p = _r.Probes[i];
            if (p.Recovery is not null) continue;
            // Arrived after the probe gave up (e.g. in the drain): report the real time, still a failure.
            var t0 = p.T0;
            var arrived = _firstArrivalByDomain.TryGetValue(p.Domain, out var at);
            var late = arrived ? $"; arrived {(at - t0).TotalSeconds:F1}s after the fault" : "";
            _r.Probes[i] = p with { Note = p.Note + late, Late = arrived ? at - t0 : null };
            _r.Failures.Add($"fresh domain {p.Label}: not delivered within {p.Bound.TotalSeconds:F0}s ({p.Note}{late})");
        }
        if (_r.RefusedDelivered > 0) _r.Notes.Add($"{_r.RefusedDelivered} messages answered 4xx/5xx were delivered anyway");
    }
}
