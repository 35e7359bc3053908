using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// The MtaSts.Actors gateway, started as `dotnet &lt;dll&gt; serve --config &lt;file&gt;` (or any command given with
/// --gateway-cmd, placeholders {config} {listen} {port} {sink} {workdir}). The harness writes the config file; the
/// same facts go into MTASTS_LOADTEST_* environment variables, so the engine can pick whichever it prefers.
/// The contract is documented in load-tests/README.md ("Wiring the gateway").
/// </summary>
public sealed class GatewayTarget(int port, string? dllPath, string? commandTemplate, string repoRoot) : ITarget
{
    private Process? _process;
    private string? _statsFile;
    private string? _log;
    private readonly Dictionary<string, string> _facts = new();

    public string Name => "gateway";
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
        var dir = Path.Combine(spec.WorkDirectory, "gateway");
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        var config = Path.Combine(dir, "gateway.loadtest.json");
        _statsFile = Path.Combine(dir, "stats.json");
        _log = Path.Combine(dir, "gateway.log");
        var sink = spec.Routes.FirstOrDefault(r => r.Key == "*").Value ?? spec.Routes[0].Value;
        await File.WriteAllTextAsync(config, ConfigJson(spec, dir).ToJsonString(new JsonSerializerOptions { WriteIndented = true }), ct);

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
                return "target not available yet: mtasts-gateway.dll not found (build src/MtaSts.Actors.Host, or pass --gateway-dll/--gateway-cmd)";
            file = "dotnet";
            args = [dll, "serve", "--config", config];
        }

        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["MTASTS_LOADTEST_CONFIG"] = config;
        psi.Environment["MTASTS_LOADTEST_LISTEN"] = Endpoint.ToString();
        psi.Environment["MTASTS_LOADTEST_ROUTES"] = string.Join(',', spec.Routes.Select(r => $"{r.Key}={r.Value}"));
        psi.Environment["MTASTS_LOADTEST_MTASTS"] = spec.MtaSts ? "1" : "0";
        psi.Environment["MTASTS_LOADTEST_SPOOL"] = Path.Combine(dir, "spool");
        psi.Environment["MTASTS_LOADTEST_STATS_FILE"] = _statsFile;
        _facts["command"] = file + " " + string.Join(' ', args.Select(ProcessRunner.Quote));
        _facts["config"] = config;
        _facts["mta-sts"] = spec.MtaSts ? "on" : "off";

        _process = Process.Start(psi);
        if (_process is null) return "target not available yet: could not start " + file;
        var logWriter = new StreamWriter(_log) { AutoFlush = true };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (logWriter) logWriter.WriteLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (logWriter) logWriter.WriteLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && !ct.IsCancellationRequested)
        {
            if (_process.HasExited)
            {
                await Task.Delay(200, CancellationToken.None);
                return $"target not available yet: `{_facts["command"]}` exited with code {_process.ExitCode} before listening on {Endpoint} (the `serve` command is not implemented yet?){LogTail()}".TrimEnd();
            }
            if (await Loopback.WaitForListenerAsync(Endpoint, TimeSpan.FromMilliseconds(300), ct)) return null;
        }
        await StopAsync();
        return $"target not available yet: gateway did not listen on {Endpoint} within 30 s{LogTail()}";
    }

    /// <summary>The configuration the gateway must accept for load tests (see README, "Wiring the gateway").</summary>
    private JsonObject ConfigJson(TargetSpec spec, string dir) => new()
    {
        ["listen"] = Endpoint.ToString(),
        ["hostname"] = "gateway.loadtest.invalid",
        ["relayNetworks"] = new JsonArray("127.0.0.0/8"),
        ["spoolDirectory"] = Path.Combine(dir, "spool"),
        // MX override: destination pattern -> host:port. "*" covers every domain. No DNS, no MTA-STS fetch leaves the box.
        ["smtpRoutes"] = new JsonObject(spec.Routes.Select(r => KeyValuePair.Create(r.Key, (JsonNode?)JsonValue.Create(r.Value.ToString())))),
        ["destinations"] = new JsonObject
        {
            ["default"] = new JsonObject
            {
                ["maxConcurrency"] = spec.DestinationConcurrency,
                ["maxMessagesPerConnection"] = spec.MessagesPerConnection,
                ["tls"] = "none",
                ["mtaSts"] = spec.MtaSts,
            },
        },
        ["retry"] = spec.RetryInterval is { } r ? new JsonObject { ["initialSeconds"] = r.TotalSeconds, ["maxSeconds"] = r.TotalSeconds * 2 } : null,
        ["statsFile"] = _statsFile,
        ["domainCount"] = spec.Domains.Count,
    };

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

    public Task FlushAsync(CancellationToken ct) => Task.CompletedTask; // the gateway retries on its own (short retry schedule in the config)

    public async Task StopAsync()
    {
        if (_process is null) return;
        if (!_process.HasExited)
        {
            // SIGTERM first: a graceful stop is part of what the gateway must do; kill only if it hangs.
            await ProcessRunner.RunAsync("/bin/kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(5));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try { await _process.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { _process.Kill(entireProcessTree: true); }
        }
        _process.Dispose();
        _process = null;
    }

    private string LogTail() => _log is not null && File.Exists(_log) ? "\n  " + string.Join("\n  ", File.ReadLines(_log).TakeLast(8)) : "";

    public async ValueTask DisposeAsync() => await StopAsync();
}
