using System.Runtime.InteropServices;
using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Host.Cli;

/// <summary><c>serve</c>: the gateway and its admin endpoint until SIGTERM/SIGINT.</summary>
internal static class ServeCommand
{
    public static async Task<int> RunAsync(IReadOnlyList<string> files, TextWriter stderr)
    {
        var config = GatewayConfig.Load(files);
        var adminOptions = Admin.AdminOptions.FromHocon(config.Hocon); // config errors before anything starts
        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.Cancel(); });
        await using var gateway = await Gateway.StartAsync(config, ct: stop.Token).ConfigureAwait(false);
        Admin.AdminServer? admin = null;
        if (adminOptions.Enabled)
        {
            // Not cancelled by a SIGTERM during its short start: the stop below disposes it.
            try { admin = await Admin.AdminServer.StartAsync(gateway, adminOptions, CancellationToken.None).ConfigureAwait(false); }
            catch (IOException ex)
            {
                var why = $"admin endpoint cannot bind {string.Join(", ", adminOptions.Endpoints)}: {ex.Message}";
                gateway.Log.Critical("admin_listen_failed", why);
                await stderr.WriteLineAsync($"mtasts-gateway: {why}").ConfigureAwait(false);
                await gateway.StopAsync().ConfigureAwait(false);
                return GatewayCli.ExitUsage;
            }
        }
        // SIGUSR1 = deliver now: every deferred recipient is retried at once (after an outage is fixed), like
        // `postqueue -f`. PosixSignal takes raw signal numbers; 10 is SIGUSR1 on Linux.
        using var sigusr1 = PosixSignalRegistration.Create((PosixSignal)10, ctx =>
        {
            ctx.Cancel = true;
            _ = gateway.DeliverNowAsync();
        });
        // Until SIGTERM/SIGINT, or until the actor system terminates by itself: this node was downed (split-brain
        // resolver) or removed from its cluster. It must not stay up as a listener that cannot deliver.
        var signalled = Task.Delay(Timeout.Infinite, stop.Token);
        await Task.WhenAny(signalled, gateway.Terminated).ConfigureAwait(false);
        // Several handlers see one SIGTERM in no fixed order: a termination it caused is not a downed node.
        if (!stop.IsCancellationRequested) await Task.WhenAny(signalled, Task.Delay(TimeSpan.FromSeconds(1))).ConfigureAwait(false);
        if (!stop.IsCancellationRequested)
        {
            gateway.Log.Critical("actor_system_terminated",
                "Actor system terminated (this node was downed or left its cluster): SMTP intake closed, stopping; " +
                $"exit code {GatewayCli.ExitActorSystemTerminated} so that the service manager restarts the gateway");
            await gateway.StopAsync().ConfigureAwait(false);
            if (admin is not null) await admin.DisposeAsync().ConfigureAwait(false);
            await stderr.WriteLineAsync("mtasts-gateway: actor system terminated (node downed or removed from its cluster); exiting for a restart").ConfigureAwait(false);
            return GatewayCli.ExitActorSystemTerminated;
        }
        // Graceful: stop accepting, let in-flight SMTP transactions finish, stop actors, close the spool. The admin
        // endpoint stays up meanwhile (readiness reports "not ready" while stopping), then goes.
        await gateway.StopAsync().ConfigureAwait(false);
        if (admin is not null) await admin.DisposeAsync().ConfigureAwait(false);
        return GatewayCli.ExitOk;
    }
}
