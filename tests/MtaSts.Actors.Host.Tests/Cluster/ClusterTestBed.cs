using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MtaSts.Actors.Host.Tests.Serve;
using MtaSts.Actors.TestInfra.Net;
using MtaSts.Actors.TestInfra.Postgres;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Host.Tests.Cluster;

/// <summary>One gateway node of a test cluster: its ports, data directory and (once started) its OS process.</summary>
public sealed class ClusterNode(string name, string work)
{
    public string Name { get; } = name;
    public int SmtpPort { get; } = LoopbackPort.Free();
    public int AdminPort { get; } = LoopbackPort.Free();
    public int AkkaPort { get; } = LoopbackPort.Free();
    public int ManagementPort { get; } = LoopbackPort.Free();
    public string Dir { get; } = Path.Combine(work, name);
    public string MailLog => Path.Combine(Dir, "mail.log");
    public string ContactPoint => $"127.0.0.1:{ManagementPort}";
    public string SeedNode => $"akka.tcp://mtasts@127.0.0.1:{AkkaPort}";
    public GatewayProcess? Process { get; set; }

    public string Log()
    {
        if (!File.Exists(MailLog)) return "";
        using var s = new FileStream(MailLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(s).ReadToEnd();
    }

    public override string ToString() => $"node {Name} (smtp {SmtpPort}): {Process}\n--- mail.log\n{Log()}";
}

/// <summary>
/// Gateway nodes as real OS processes (<c>serve</c>) on loopback, each with its own data directory, sharing one
/// private PostgreSQL (journal, coordinator state, cluster spool), all delivering to one counting receiver. Failure-detector and split-brain timings are short so that a
/// test takes well under a minute. Every process is stopped by its PID at the end (SIGCONT first, in case a test left
/// one stopped).
/// </summary>
public sealed class ClusterTestBed : IAsyncDisposable
{
    public static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);
    public string Work { get; } = Directory.CreateTempSubdirectory("mtasts-cluster-").FullName;
    public TestSmtpReceiver Receiver { get; } = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
    public List<ClusterNode> Nodes { get; } = new();
    private PostgresInstance? _pg;
    private string _pgConnection = "";

    /// <summary>The PostgreSQL database every node shares (started with the first node).</summary>
    private string Database()
    {
        if (_pg is null)
        {
            _pg = PostgresInstance.StartAsync().GetAwaiter().GetResult();
            _pgConnection = _pg.CreateDatabaseAsync("mtasts").GetAwaiter().GetResult();
        }
        return _pgConnection;
    }

    public ClusterNode[] AddNodes(int count)
    {
        var added = Enumerable.Range(Nodes.Count, count).Select(i => new ClusterNode("node" + (char)('a' + i), Work)).ToArray();
        Nodes.AddRange(added);
        return added;
    }

    /// <param name="cluster">The mtasts.cluster block for this node (formation, split-brain, bootstrap …).</param>
    public GatewayProcess Start(ClusterNode node, string cluster, string akka = "")
    {
        Directory.CreateDirectory(node.Dir);
        var conf = Path.Combine(node.Dir, "gw.conf");
        var cs = "\"" + Database() + "\"";
        File.WriteAllText(conf, $$"""
            mtasts {
              data-dir = "{{node.Dir}}/data"
              hostname = "{{node.Name}}.cluster.test"
              listener.endpoints = ["127.0.0.1:{{node.SmtpPort}}"]
              admin.endpoints = ["127.0.0.1:{{node.AdminPort}}"]
              delivery.mx-override { "*" = "127.0.0.1:{{Receiver.Port}}" }
              delivery.connect-timeout = 2s
              dns { servers = ["127.0.0.1:9"], timeout = 1s, retries = 0 }
              log.text = "{{node.MailLog}}"
              cluster {
                {{cluster}}
              }
            }
            mtasts.destinations.default { tls-support = none, mta-sts = off }
            akka.remote.dot-netty.tcp.port = {{node.AkkaPort}}
            akka.cluster.sharding.state-store-mode = persistence
            akka.persistence.journal.sql { connection-string = {{cs}}, provider-name = "PostgreSQL.15", parallelism = 4 }
            akka.persistence.journal.sharding { connection-string = {{cs}}, provider-name = "PostgreSQL.15", table-mapping = default,
              default.journal.table-name = "sharding_journal", default.metadata.table-name = "sharding_journal_metadata" }
            akka.persistence.snapshot-store.sql { connection-string = {{cs}}, provider-name = "PostgreSQL.15" }
            akka.persistence.snapshot-store.sharding { connection-string = {{cs}}, provider-name = "PostgreSQL.15",
              default.snapshot.table-name = "sharding_snapshot" }
            akka.cluster {
              failure-detector { heartbeat-interval = 500ms, acceptable-heartbeat-pause = 2s }
              split-brain-resolver.stable-after = 3s
            }
            akka.management.cluster.bootstrap {
              contact-point-discovery { stable-margin = 1s, interval = 500ms }
              contact-point.probe-interval = 500ms
            }
            {{akka}}
            """);
        node.Process = GatewayProcess.Start(conf);
        return node.Process;
    }

    /// <summary>One message through a fresh SMTP session: the reply code at the end of DATA, or the code of the first
    /// refusal (421 at connect or at MAIL), or null when the node did not answer within <paramref name="timeout"/>.</summary>
    public static async Task<(int? Code, string Line)> SendAsync(int port, string to, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            return await SmtpSubmission.SendAsync(port, "probe.test", "probe@client.test", to,
                $"Subject: {to}\r\nMessage-ID: <{Guid.NewGuid():N}@client.test>\r\n\r\nprobe", cts.Token);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            return (null, e.GetType().Name + ": " + e.Message);
        }
    }

    /// <summary>Sends until a message is accepted (250); the time it took, or throws with the last answer.</summary>
    public static async Task<TimeSpan> UntilAcceptedAsync(ClusterNode node, string to, TimeSpan within)
    {
        var sw = Stopwatch.StartNew();
        (int? Code, string Line) last = (null, "");
        while (sw.Elapsed < within)
        {
            last = await SendAsync(node.SmtpPort, to);
            if (last.Code == 250) return sw.Elapsed;
            await Task.Delay(250);
        }
        throw new TimeoutException($"{node.Name} did not accept within {within}; last answer {last.Line}\n{node}");
    }

    /// <summary>GET /health/ready on the node's admin endpoint: the status code, or null when it does not answer.</summary>
    public static async Task<int?> ReadyAsync(ClusterNode node)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try { return (int)(await http.GetAsync($"http://127.0.0.1:{node.AdminPort}/health/ready")).StatusCode; }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return null; }
    }

    public async Task<bool> DeliveredAsync(string to, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            if (Receiver.Messages.Any(m => m.Recipients.Any(r => r.Address == to))) return true;
            await Task.Delay(100);
        }
        return false;
    }

    public string Describe() => string.Join("\n\n", Nodes.Select(n => n.ToString()));

    public async ValueTask DisposeAsync()
    {
        foreach (var n in Nodes.Where(n => n.Process is { HasExited: false }))
            try { n.Process!.Signal(18); } catch (InvalidOperationException) { } // SIGCONT: a stopped process cannot handle SIGTERM
        try
        {
            await Task.WhenAll(Nodes.Where(n => n.Process is not null).Select(n => n.Process!.DisposeAsync().AsTask()));
            await Receiver.DisposeAsync();
        }
        finally
        {
            // Whatever a node's stop threw, the private PostgreSQL goes too (a leaked server outlives the test run).
            if (_pg is not null) await _pg.DisposeAsync();
            try { Directory.Delete(Work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
