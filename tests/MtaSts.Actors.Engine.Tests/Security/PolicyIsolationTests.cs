using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Engine.Tests.EndToEnd;
using MtaSts.Actors.TestInfra.Http;
using MtaSts.Actors.TestInfra.Proxy;

namespace MtaSts.Actors.Engine.Tests.Security;

/// <summary>
/// The policy branch is apart from delivery: a policy proxy that never answers holds up only the destination that
/// needs a policy; every other destination keeps delivering. When the proxy works again the destination recovers
/// without a restart.
/// </summary>
public sealed class PolicyIsolationTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Hung_policy_proxy_holds_only_its_domain_and_the_domain_recovers_when_the_proxy_works()
    {
        if (!TinyproxyInstance.IsAvailable) throw new InvalidOperationException("tinyproxy missing: run tests/setup-env.sh");
        const string p = "p.iso.test";
        await using var lab = new SecurityLab();
        await using var policies = await PolicyHttpsServer.StartAsync(lab.Ca);
        var pMx = lab.Receiver(ReceiverKind.Hosted, "mx." + p);
        var others = lab.Receiver(ReceiverKind.Valid, "mx.other.test");
        lab.Dns.AddTxt("_mta-sts." + p, "v=STSv1; id=1;");
        policies.ServePolicy(p, $"version: STSv1\nmode: enforce\nmx: mx.{p}\nmax_age: 86400\n");
        await using var tinyproxy = await TinyproxyInstance.StartAsync(new Dictionary<string, IPAddress> { ["mta-sts." + p] = IPAddress.Loopback });
        // The operator's proxy address: hangs first (like HangingProxy), later a working proxy (tinyproxy) answers there.
        await using var proxy = new SwitchableProxy();

        await using var gw = await GatewayFixture.StartAsync(
            $"\"{p}\" = \"mx.{p}:{pMx.Port}\"\n\"*\" = \"mx.other.test:{others.Port}\"",
            $$"""
            {{lab.TrustHocon}}
            mtasts.log.level = debug
            mtasts.policy { proxy = "{{proxy.Uri}}"
              connect-timeout = 6s }
            mtasts.destinations."{{p}}".mta-sts = on
            """, null,
            new GatewayOverrides
            {
                Dns = lab.Resolver(),
                PolicyHttpsPort = policies.Port,
                // The destination waits at most 1 s for the policy branch per round, then defers (and retries).
                Tuning = new EngineTuning { PolicyTimeout = TimeSpan.FromSeconds(1), PolicyReuse = TimeSpan.FromMilliseconds(200) },
            });

        // 1. Hung proxy: the policy domain waits; twenty other domains are delivered meanwhile.
        await gw.SendAsync("app@sender.test", [$"user@{p}"], "policy domain");
        var started = DateTime.UtcNow;
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => gw.SendAsync("app@sender.test", [$"u@d{i}.other.test"], $"other {i}")));
        await gw.ReceivedAsync(others, 20, TimeSpan.FromSeconds(15));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15));
        Assert.Empty(pMx.Messages); // still waiting for its policy
        await gw.WaitForLineAsync(l => l.EndsWith("Requesting MTA-STS policy fetch via proxy", StringComparison.Ordinal), Wait);

        // The domain defers while the policy cannot be had, and the guide's fetch-failure lines appear.
        await gw.WaitForLineAsync(l => l.Contains("Delayed: DCID") && l.Contains($"user@{p}") && l.Contains("MTA-STS policy"), Wait);
        Assert.True(proxy.Accepted >= 1, "the policy fetch went to the proxy");
        await gw.WaitForLineAsync(l => l.EndsWith($"Request to fetch STS policy failed due to a connection timeout., for the domain {p}", StringComparison.Ordinal), Wait);
        await gw.WaitForLineAsync(l => l.EndsWith($"Failure encountered while fetching MTA-STS policy for the domain({p})", StringComparison.Ordinal), Wait);
        Assert.Equal(0, policies.Requests(p));

        // RFC 8461 §3.3: a failed first fetch with nothing cached = deliver as if the domain had no MTA-STS.
        var first = Assert.Single(await gw.ReceivedAsync(pMx, 1, Wait));
        Assert.Equal($"user@{p}", Assert.Single(first.Recipients).Address);
        Assert.DoesNotContain(gw.Lines, l => l.Contains($"Applying MTA-STS policy for the domain ({p})"));

        // 2. A working proxy answers at the operator's proxy address; the owner publishes a new policy id (the failed
        // id is negatively cached for 5 minutes, RFC 8461 §3.3). No restart: the next message is under the policy.
        proxy.ForwardTo(tinyproxy.Port);
        lab.Dns.SetTxt("_mta-sts." + p, "v=STSv1; id=2;");
        await Task.Delay(1000); // past the destination's 200 ms policy reuse (its last answer was "no policy")
        await gw.SendAsync("app@sender.test", [$"again@{p}"], "after recovery");
        var msgs = await gw.ReceivedAsync(pMx, 2, Wait);
        var second = msgs.Single(m => m.Recipients.Any(r => r.Address == $"again@{p}"));
        Assert.True(second.Tls, "delivered without TLS; log:\n" + string.Join("\n", gw.Lines.Where(l => l.Contains(p) || l.Contains("MTA-STS") || l.Contains("proxy"))));
        await gw.WaitForLineAsync(l => l.EndsWith($"Applying MTA-STS policy for the domain ({p})", StringComparison.Ordinal), Wait);
        await gw.WaitForLineAsync(l => l.EndsWith($"MTA-STS policy for the domain ({p}) Successful.", StringComparison.Ordinal), Wait);
        Assert.True(policies.Requests(p) >= 1, "the policy was fetched through the working proxy");
    }

    /// <summary>A TCP endpoint that first hangs every connection (accepts, never answers) and, once switched, relays
    /// new connections to a real proxy: what an operator sees when a broken proxy is replaced at the same address.</summary>
    private sealed class SwitchableProxy : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentBag<TcpClient> _held = new();
        private readonly Task _loop;
        private volatile int _forwardPort;
        private int _accepted;

        public SwitchableProxy()
        {
            _listener.Start();
            Uri = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
            _loop = Task.Run(LoopAsync);
        }

        public Uri Uri { get; }
        public int Accepted => Volatile.Read(ref _accepted);
        public void ForwardTo(int port) => _forwardPort = port;

        private async Task LoopAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                catch (Exception) { return; }
                Interlocked.Increment(ref _accepted);
                _held.Add(client);
                if (_forwardPort != 0) _ = RelayAsync(client, _forwardPort);
            }
        }

        private async Task RelayAsync(TcpClient client, int port)
        {
            using var upstream = new TcpClient();
            try
            {
                await upstream.ConnectAsync(IPAddress.Loopback, port, _stop.Token);
                var a = client.GetStream();
                var b = upstream.GetStream();
                await Task.WhenAny(a.CopyToAsync(b, _stop.Token), b.CopyToAsync(a, _stop.Token));
            }
            catch (Exception) { /* either side closed */ }
            finally { client.Dispose(); }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            foreach (var c in _held) c.Dispose();
            try { await _loop.WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { }
            _stop.Dispose();
        }
    }
}
