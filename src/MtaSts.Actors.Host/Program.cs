using System.Runtime.InteropServices;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Host;

public static class Program
{
    private const string Usage = """
        mtasts-gateway — outbound mail gateway with MTA-STS, DANE and destination controls

        Usage:
          mtasts-gateway serve [--config FILE]...   run the gateway (default config: hocon/*.conf next to the binary)
          mtasts-gateway check DOMAIN [options]     MTA-STS checker (TXT, policy, certificates, MX STARTTLS)
          mtasts-gateway check --help               checker options
          mtasts-gateway config [--config FILE]...  validate the configuration and print the effective destination controls

        Exit codes: 0 ok, 1 check verdict "not deliverable" / serve failed, 2 usage or configuration error, or the
        SMTP port or the data directory is already in use (another gateway or MTA).
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.Out.Write(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            return args[0] switch
            {
                "serve" => await ServeAsync(args[1..]).ConfigureAwait(false),
                "check" => await Check.CheckCommand.RunAsync(args[1..], Console.Out, Console.Error, CancellationToken.None).ConfigureAwait(false),
                "config" => ValidateConfig(args[1..]),
                _ => UsageError($"unknown command '{args[0]}'"),
            };
        }
        catch (GatewayConfigException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return 2;
        }
        catch (Exception ex) when (ex is ListenerBindException or DataDirectoryInUseException)
        {
            // Another gateway (or MTA) owns the port or the data directory: a clear line, no stack trace; the
            // operator log already has it as a Critical line.
            Console.Error.WriteLine($"mtasts-gateway: {ex.Message}");
            return 2;
        }
    }

    private static int UsageError(string message)
    {
        Console.Error.WriteLine($"mtasts-gateway: {message}");
        Console.Error.Write(Usage);
        return 2;
    }

    /// <summary>--config FILE options, appended after the shipped defaults (later files win).</summary>
    private static IReadOnlyList<string>? ConfigFiles(string[] args)
    {
        var files = GatewayConfig.DefaultFiles().ToList();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--config" && i + 1 < args.Length) files.Add(Path.GetFullPath(args[++i]));
            else
            {
                UsageError($"unexpected argument '{args[i]}'");
                return null;
            }
        }
        return files;
    }

    private static int ValidateConfig(string[] args)
    {
        if (ConfigFiles(args) is not { } files) return 2;
        var config = GatewayConfig.Load(files);
        var admin = Admin.AdminOptions.FromHocon(config.Hocon);
        Console.Out.WriteLine($"admin endpoint: {(admin.Enabled ? string.Join(", ", admin.Endpoints) + (admin.Token is null ? " (no token)" : " (bearer token)") : "off")}");
        Console.Out.WriteLine($"configuration OK ({string.Join(", ", files)})");
        foreach (var p in config.Destinations.Profiles.Profiles.Prepend(config.Destinations.Profiles.Default).Distinct())
            Console.Out.WriteLine($"  {p.Destination,-28} conn {p.MaxConcurrentConnections,4}  msgs/conn {p.MaxMessagesPerConnection,4}  tls {p.TlsSupport,-27} dane {p.DaneSupport,-13} mta-sts {(p.MtaSts ? "yes" : "no")}  bounce {p.BounceProfile}");
        return 0;
    }

    private static async Task<int> ServeAsync(string[] args)
    {
        if (ConfigFiles(args) is not { } files) return 2;
        var config = GatewayConfig.Load(files);
        var adminOptions = Admin.AdminOptions.FromHocon(config.Hocon); // config errors before anything starts
        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.Cancel(); });
        await using var gateway = await Gateway.StartAsync(config, ct: stop.Token).ConfigureAwait(false);
        Admin.AdminServer? admin = null;
        if (adminOptions.Enabled)
        {
            try { admin = await Admin.AdminServer.StartAsync(gateway, adminOptions, stop.Token).ConfigureAwait(false); }
            catch (IOException ex)
            {
                var why = $"admin endpoint cannot bind {string.Join(", ", adminOptions.Endpoints)}: {ex.Message}";
                gateway.Log.Critical("admin_listen_failed", why);
                Console.Error.WriteLine($"mtasts-gateway: {why}");
                await gateway.StopAsync().ConfigureAwait(false);
                return 2;
            }
        }
        // SIGUSR1 = deliver now: every deferred recipient is retried at once (after an outage is fixed), like
        // `postqueue -f`. PosixSignal takes raw signal numbers; 10 is SIGUSR1 on Linux.
        using var sigusr1 = PosixSignalRegistration.Create((PosixSignal)10, ctx =>
        {
            ctx.Cancel = true;
            gateway.DeliverNow();
        });
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        // Graceful: stop accepting, let in-flight SMTP transactions finish, stop actors, close the spool. The admin
        // endpoint stays up meanwhile (readiness reports "not ready" while stopping), then goes.
        await gateway.StopAsync().ConfigureAwait(false);
        if (admin is not null) await admin.DisposeAsync().ConfigureAwait(false);
        return 0;
    }
}
