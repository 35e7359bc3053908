using System.CommandLine;
using System.CommandLine.Parsing;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Host.Cli;

/// <summary>
/// The <c>mtasts-gateway</c> command line on System.CommandLine: <c>serve</c>, <c>check</c>, <c>config</c> and the
/// admin commands that talk to a running <c>serve</c> through its admin API. Usage errors exit 2 with one
/// "mtasts-gateway COMMAND: problem" line per error on stderr (nothing on stdout); tab completion comes from
/// System.CommandLine's <c>[suggest]</c> directive.
/// </summary>
public static class GatewayCli
{
    public const int ExitOk = 0;
    public const int ExitNotFound = 1;
    public const int ExitUsage = 2;
    public const int ExitAdminUnreachable = 3;
    /// <summary><c>serve</c>: the actor system terminated without a stop signal (node downed by the split-brain
    /// resolver, or removed from its cluster); the listener was stopped and the spool closed. Restart the process.</summary>
    public const int ExitActorSystemTerminated = 4;

    public const string ExitCodes = """
        Exit codes: 0 ok; 1 not found (admin commands) / check verdict "not deliverable" / serve failed;
        2 usage or configuration error, or the SMTP port or the data directory is already in use;
        3 admin endpoint unreachable or token rejected; 4 serve: actor system terminated (node downed or removed
        from its cluster; restart it).
        """;

    public static RootCommand Build()
    {
        var root = new RootCommand("mtasts-gateway — outbound mail gateway with MTA-STS, DANE and destination controls");
        Help.Epilogue(root, $"""
            Admin commands talk to a running `serve` through its admin endpoint (mtasts.admin; --admin URL, --token).
            Tab completion: `mtasts-gateway "[suggest:POSITION]" "PARTIAL COMMAND LINE"` lists what may come at POSITION
            (System.CommandLine's suggest directive; bash: COMPREPLY=($(mtasts-gateway "[suggest:$COMP_POINT]" "$COMP_LINE"))).

            {ExitCodes}
            """);
        Help.Install(root);
        root.Subcommands.Add(Serve());
        root.Subcommands.Add(Check.CheckCommand.Create());
        root.Subcommands.Add(ConfigCommand());
        foreach (var c in AdminCommands.Create()) root.Subcommands.Add(c);
        return root;
    }

    /// <summary>Parses and runs a command line; output to the given writers (the console for the real process).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        var root = Build();
        var invocation = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
            // serve handles SIGTERM/SIGINT itself (graceful stop takes as long as in-flight transactions need).
            ProcessTerminationTimeout = null,
        };
        if (args.Length == 0)
        {
            await root.Parse(["--help"]).InvokeAsync(invocation, ct).ConfigureAwait(false);
            return ExitUsage;
        }
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            var name = CommandPath(parsed.CommandResult);
            foreach (var e in parsed.Errors) await stderr.WriteLineAsync($"{name}: {e.Message}").ConfigureAwait(false);
            await stderr.WriteLineAsync($"see `{name} --help`").ConfigureAwait(false);
            return ExitUsage;
        }
        try
        {
            return await parsed.InvokeAsync(invocation, ct).ConfigureAwait(false);
        }
        catch (GatewayConfigException ex)
        {
            await stderr.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return ExitUsage;
        }
        catch (Exception ex) when (ex is ListenerBindException or DataDirectoryInUseException)
        {
            // Another gateway (or MTA) owns the port or the data directory: a clear line, no stack trace; the
            // operator log already has it as a Critical line.
            await stderr.WriteLineAsync($"mtasts-gateway: {ex.Message}").ConfigureAwait(false);
            return ExitUsage;
        }
        catch (CliException ex)
        {
            await stderr.WriteLineAsync($"{CommandPath(parsed.CommandResult)}: {ex.Message}").ConfigureAwait(false);
            return ex.ExitCode;
        }
    }

    /// <summary>"mtasts-gateway queue show" for the command that was parsed.</summary>
    public static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is not null; r = r.Parent)
            if (r is CommandResult c) names.Insert(0, c.Command is RootCommand ? "mtasts-gateway" : c.Command.Name);
        return string.Join(' ', names);
    }

    /// <summary>--config FILE, repeatable: appended after the shipped defaults (later files win).</summary>
    public static Option<string[]> ConfigOption() => new("--config")
    {
        Description = "HOCON configuration file, after the shipped hocon/*.conf (repeatable; later files win)",
        HelpName = "FILE",
        Arity = ArgumentArity.ZeroOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    public static IReadOnlyList<string> ConfigFiles(string[]? given) =>
        [.. GatewayConfig.DefaultFiles(), .. (given ?? []).Select(Path.GetFullPath)];

    private static Command Serve()
    {
        var config = ConfigOption();
        var serve = new Command("serve", "Run the gateway: SMTP listener, delivery, admin endpoint") { config };
        Help.Epilogue(serve, """
            Default configuration: hocon/*.conf next to the binary, then each --config FILE. SIGTERM/SIGINT stop
            gracefully (in-flight transactions finish, spool closed); SIGUSR1 = deliver now.

            Exit codes: 0 stopped, 1 failed, 2 configuration error or the SMTP port / data directory / admin endpoint
            is already in use, 4 the actor system terminated without a stop signal (this node was downed by the
            split-brain resolver or removed from its cluster): listener stopped, spool closed; restart the process
            (systemd Restart=on-failure, Kubernetes restartPolicy).
            """);
        serve.SetAction((p, _) => ServeCommand.RunAsync(ConfigFiles(p.GetValue(config)), p.InvocationConfiguration.Error));
        return serve;
    }

    private static Command ConfigCommand()
    {
        var config = ConfigOption();
        var cmd = new Command("config", "Validate the configuration; print the admin endpoint and the destination controls") { config };
        Help.Epilogue(cmd, "Exit codes: 0 valid, 2 configuration error (every problem listed, with its setting).");
        cmd.SetAction(p =>
        {
            var files = ConfigFiles(p.GetValue(config));
            var output = p.InvocationConfiguration.Output;
            var gw = GatewayConfig.Load(files);
            var admin = Admin.AdminOptions.FromHocon(gw.Hocon);
            output.WriteLine($"admin endpoint: {(admin.Enabled ? string.Join(", ", admin.Endpoints) + (admin.Token is null ? " (no token)" : " (bearer token)") : "off")}");
            output.WriteLine($"configuration OK ({string.Join(", ", files)})");
            if (gw.DestConfigImported)
                output.WriteLine($"destination profiles from {gw.DestConfigFile} (destconfig import; it replaces mtasts.destinations and mtasts.bounce-profiles of the files)");
            foreach (var pr in gw.Destinations.Profiles.Profiles.Prepend(gw.Destinations.Profiles.Default).Distinct())
                output.WriteLine("  " + DestinationConfigWriter.Summary(pr)
                    + (pr.ThrottleRules.Count > 0 ? $"  throttle-rules {string.Join(",", pr.ThrottleRules.Select(r => r.Name))}" : ""));
            output.WriteLine($"throttle rules (mtasts.throttle): {(gw.Throttle.Rules.Count == 0 ? "none" : string.Join(", ", gw.Throttle.Rules.Select(r => $"{r.Name} ({r.Describe()})")))}; " +
                $"built-ins {(gw.Throttle.Builtin ? "on: " + string.Join(", ", MtaSts.Actors.DestinationControls.Throttling.BuiltinThrottleRules.All.Select(r => r.Name)) : "off")}");
            return ExitOk;
        });
        return cmd;
    }
}

/// <summary>A command failed in a way the operator can act on: message on stderr, this exit code.</summary>
public sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
