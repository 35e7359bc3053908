using System.Collections.Immutable;
using System.Net;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Management.Cluster.Bootstrap;
using Akka.Management.Cluster.Bootstrap.ContactPoint;
using Akka.Management.Dsl;
using MtaSts.Actors.Logging;
using Newtonsoft.Json;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>
/// This node's cluster-bootstrap contact point: <c>GET /bootstrap/seed-nodes</c> on
/// mtasts.cluster.bootstrap.management-hostname:management-port, the route the other nodes' bootstrap probes.
/// Why not AkkaManagement.Start(): its HTTP server (Akka.Http.Shim 1.5.73 on Ceen.Httpd) calls
/// <c>Ceen.Httpd.HttpServer.ListenAsync(IPEndPoint, …)</c> from Ceen.Httpd 0.9.9, and the package source serves only
/// 0.9.10, whose ListenAsync takes an EndPoint: it fails at start with MissingMethodException. So the same answer is
/// served here with HttpListener — Akka.Management's own <see cref="HttpBootstrapJsonProtocol.SeedNodes"/> type,
/// serialized with Newtonsoft.Json as its route does and its prober reads — and the self contact point is handed to
/// ClusterBootstrap through its public route-provider entry point.
/// </summary>
internal sealed class BootstrapContactPoint : IAsyncDisposable
{
    private readonly HttpListener _http = new();
    private readonly ActorSystem _system;
    private readonly ClusterBootstrapSettings _settings;
    private readonly MailLog _log;
    private readonly Task _loop;

    private BootstrapContactPoint(ActorSystem system, ClusterFormation formation, MailLog log)
    {
        _system = system;
        _log = log;
        _settings = ClusterBootstrapSettings.Create(system.Settings.Config, system.Log);
        _http.Prefixes.Add($"http://{formation.ManagementHostname}:{formation.ManagementPort}/bootstrap/");
        _http.Start();
        _loop = ServeAsync();
    }

    /// <summary>Binds the contact point, then starts the bootstrap (which probes every contact point, this one too).</summary>
    public static async Task<BootstrapContactPoint> StartAsync(ActorSystem system, ClusterFormation formation, MailLog log)
    {
        var bootstrap = ClusterBootstrap.Get(system);
        // The self contact point decides whether this node is the lowest one (the one that may form a new cluster).
        bootstrap.Routes(ManagementRouteProviderSettings.Create(new Uri($"http://{formation.ManagementHostname}:{formation.ManagementPort}/"), readOnly: true));
        BootstrapContactPoint endpoint;
        try
        {
            endpoint = new BootstrapContactPoint(system, formation, log);
        }
        catch (HttpListenerException ex)
        {
            throw new InvalidOperationException(
                $"cluster bootstrap contact point cannot listen on {formation.ManagementHostname}:{formation.ManagementPort} " +
                $"(mtasts.cluster.bootstrap.management-port, MTASTS_MANAGEMENT_PORT): {ex.Message}", ex);
        }
        log.Info("cluster_bootstrap", $"Cluster bootstrap: contact point http://{formation.ManagementHostname}:{formation.ManagementPort}/bootstrap/seed-nodes, " +
            $"discovery {formation.Discovery} service {formation.ServiceName}, {formation.RequiredContactPointNr} contact points required to form a cluster");
        // Not awaited to the end: the bootstrap probes in the background; the listener refuses mail until this node is Up.
        await bootstrap.Start().ConfigureAwait(false);
        return endpoint;
    }

    private async Task ServeAsync()
    {
        while (_http.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _http.GetContextAsync().ConfigureAwait(false); }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            try
            {
                var get = ctx.Request.HttpMethod == "GET" && ctx.Request.Url?.AbsolutePath.TrimEnd('/') == "/bootstrap/seed-nodes";
                ctx.Response.StatusCode = get ? 200 : 404;
                if (get)
                {
                    var body = Encoding.UTF8.GetBytes(JsonConvert.SerializeObject(SeedNodes()));
                    ctx.Response.ContentType = "application/json";
                    ctx.Response.ContentLength64 = body.Length;
                    await ctx.Response.OutputStream.WriteAsync(body).ConfigureAwait(false);
                }
                ctx.Response.Close();
            }
            catch (Exception ex) when (ex is HttpListenerException or IOException or ObjectDisposedException)
            {
                _log.Debug("cluster_bootstrap_probe", $"Cluster bootstrap: answering a probe failed: {ex.Message}");
            }
        }
    }

    /// <summary>What Akka.Management's HttpClusterBootstrapRoutes answers: nothing while this node is leaving or
    /// gone, else the reachable Joining/WeaklyUp/Up members (the other nodes join those).</summary>
    private HttpBootstrapJsonProtocol.SeedNodes SeedNodes()
    {
        var cluster = Cluster.Get(_system);
        var self = cluster.SelfMember;
        if (self.Status is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Leaving or MemberStatus.Removed || _system.WhenTerminated.IsCompleted)
            return new HttpBootstrapJsonProtocol.SeedNodes(self.UniqueAddress.Address, ImmutableList<HttpBootstrapJsonProtocol.ClusterMember>.Empty);
        var state = cluster.State;
        var members = state.Members
            .Where(m => !state.Unreachable.Contains(m) && m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining)
            .Take(_settings.ContactPoint.MaxSeedNodesToExpose)
            .Select(m => new HttpBootstrapJsonProtocol.ClusterMember(m.UniqueAddress.Address, m.UniqueAddress.Uid, m.Status, m.Roles))
            .ToImmutableList();
        return new HttpBootstrapJsonProtocol.SeedNodes(self.UniqueAddress.Address, members);
    }

    public async ValueTask DisposeAsync()
    {
        _http.Stop();
        _http.Close();
        await _loop.ConfigureAwait(false);
    }
}
