using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using MtaSts.Actors.LoadTests.Targets;

namespace MtaSts.Actors.IntakeMemoryBench;

/// <summary>
/// The gateway under test as an OS process: <c>dotnet &lt;dll&gt; serve --config &lt;work&gt;/gateway.conf</c> with its
/// shipped runtime settings. The generated HOCON (layered over the shipped hocon/*.conf, like tests/crash and the load
/// harness do) puts the data dir in the work dir, listens on 127.0.0.1:&lt;free port&gt;, sends every domain to
/// <c>mx-override "*"</c> and writes the operator log to a file. Stopped with SIGTERM, SIGKILL after 30 s.
/// </summary>
internal sealed class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _out;

    public int Pid { get; }
    public int Port { get; }
    public string ConfigPath { get; }
    public string OutputPath { get; }
    public string MailLog { get; }
    public string DataDir { get; }
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    private GatewayProcess(Process p, StreamWriter output, int port, string config, string outputPath, string mailLog, string dataDir)
    {
        _process = p;
        _out = output;
        Pid = p.Id;
        Port = port;
        ConfigPath = config;
        OutputPath = outputPath;
        MailLog = mailLog;
        DataDir = dataDir;
    }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public static string ConfigHocon(string dataDir, string mailLog, int port, int nextHopPort, long maxMessageSize, int maxSessions)
    {
        static string Q(string v) => "\"" + v.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
        var inv = CultureInfo.InvariantCulture;
        // Akka's HOCON parser: no ${...} substitutions, no comma after a closing brace.
        return $$"""
            # Written by load-tests/IntakeMemoryBench; layered over the shipped hocon/*.conf.
            mtasts {
              data-dir = {{Q(dataDir)}}
              hostname = "gw.intake-bench.invalid"
              listener.endpoints = ["127.0.0.1:{{port.ToString(inv)}}"]
              listener.max-message-size = {{maxMessageSize.ToString(inv)}}
              admin.endpoints = ["127.0.0.1:0"]
              listener.max-sessions = {{maxSessions.ToString(inv)}}
              listener.relay-networks = ["127.0.0.0/8", "::1/128"]
              delivery {
                mx-override {
                  "*" = "127.0.0.1:{{nextHopPort.ToString(inv)}}"
                }
                connect-timeout = 5s
                connection-idle-time = 2s
              }
              log.text = {{Q(mailLog)}}
              dns.servers = ["127.0.0.1:9"]
              dns.timeout = 1s
              dns.retries = 0
            }
            mtasts.destinations.default {
              tls-support = none
              mta-sts = off
            }
            mtasts.bounce-profiles.default {
              initial-retry-interval = 1h
              max-retry-interval = 1h
            }

            """;
    }

    /// <param name="extraHocon">Appended to the generated config (later keys win): what another bench needs on top.</param>
    public static GatewayProcess Start(string dll, string workDir, int nextHopPort, long maxMessageSize, int maxSessions, string extraHocon = "")
    {
        var dataDir = Path.Combine(workDir, "data");
        Directory.CreateDirectory(dataDir);
        var config = Path.Combine(workDir, "gateway.conf");
        var mailLog = Path.Combine(workDir, "mail.log");
        var outputPath = Path.Combine(workDir, "gateway.out");
        var port = FreePort();
        File.WriteAllText(config, ConfigHocon(dataDir, mailLog, port, nextHopPort, maxMessageSize, maxSessions) + extraHocon);

        var psi = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workDir,
        };
        foreach (var a in new[] { dll, "serve", "--config", config }) psi.ArgumentList.Add(a);
        // The gateway runs with its shipped runtime settings: nothing from this shell may tune it or override its config.
        foreach (var v in psi.Environment.Keys.Where(k => k.StartsWith("DOTNET_gc", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("DOTNET_GC", StringComparison.Ordinal) || k.StartsWith("MTASTS_", StringComparison.Ordinal)
                     || k is "DOTNET_TieredPGO" or "DOTNET_TieredCompilation").ToArray())
            psi.Environment.Remove(v);
        // …and with what ships: the systemd unit's DOTNET_* lines (the gen0 budget is read from the environment only).
        if (RepoRoot() is { } root)
            foreach (var (name, value) in ShippedRuntimeSettings.Read(root)) psi.Environment[name] = value;
        var output = new StreamWriter(outputPath) { AutoFlush = true };
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start dotnet");
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.WriteLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.WriteLine("ERR " + e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return new GatewayProcess(p, output, port, config, outputPath, mailLog, dataDir);
    }

    private static string? RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MtaSts.Actors.sln"))) return dir.FullName;
        return null;
    }

    /// <summary>Ready = the listener answers 220 (spool recovered, cluster joined). False if it exited or timed out.</summary>
    public async Task<string?> WaitReadyAsync(TimeSpan timeout, CancellationToken ct)
    {
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            ct.ThrowIfCancellationRequested();
            if (_process.HasExited) return null;
            try
            {
                using var c = new TcpClient();
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                cts.CancelAfter(TimeSpan.FromSeconds(5));
                await c.ConnectAsync(IPAddress.Loopback, Port, cts.Token).ConfigureAwait(false);
                using var wire = new SmtpWire(c.GetStream());
                var (code, text) = await wire.ReadReplyAsync(cts.Token).ConfigureAwait(false);
                if (code == 220)
                {
                    await wire.WriteAsync("QUIT\r\n", cts.Token).ConfigureAwait(false);
                    return text;
                }
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException && !ct.IsCancellationRequested) { }
            await Task.Delay(200, ct).ConfigureAwait(false);
        }
        return null;
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int sig);

    /// <summary>Sends a signal to the gateway (e.g. 10 = SIGUSR1, "deliver now"); false when it could not be sent.</summary>
    public bool Signal(int signal) => !_process.HasExited && SysKill(Pid, signal) == 0;

    /// <summary>SIGTERM, then SIGKILL if it has not exited after <paramref name="grace"/>. Returns how it ended.</summary>
    public async Task<string> StopAsync(TimeSpan grace)
    {
        if (_process.HasExited) return $"had already exited (code {_process.ExitCode})";
        var sw = Stopwatch.StartNew();
        SysKill(Pid, 15);
        using var cts = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            return $"SIGTERM: exited with code {_process.ExitCode} after {sw.Elapsed.TotalSeconds:F1} s";
        }
        catch (OperationCanceledException)
        {
            _process.Kill(); // SIGKILL, this PID only
            await _process.WaitForExitAsync().ConfigureAwait(false);
            return $"did not exit within {grace.TotalSeconds:F0} s of SIGTERM: SIGKILLed";
        }
    }

    /// <summary>The end of a benchmark: stop the gateway (SIGTERM, then kill after <paramref name="grace"/>) and dispose
    /// it; a failed run gets the gateway's last output lines in <paramref name="notes"/>. Returns how it stopped.</summary>
    public async Task<string> StopForReportAsync(bool failed, List<string> notes, TimeSpan grace)
    {
        if (failed && OutputTail(15) is { Length: > 0 } tail) notes.Add("gateway output (last lines):\n\n```\n" + tail + "\n```");
        var outcome = await StopAsync(grace).ConfigureAwait(false);
        await DisposeAsync().ConfigureAwait(false);
        return outcome;
    }

    public string OutputTail(int lines)
    {
        lock (_out) _out.Flush();
        try
        {
            using var fs = new FileStream(OutputPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(fs);
            var all = new List<string>();
            while (r.ReadLine() is { } l) all.Add(l);
            return string.Join("\n", all.TakeLast(lines));
        }
        catch (IOException) { return ""; }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) await StopAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        _process.WaitForExit(); // drain the redirected output
        _process.Dispose();
        lock (_out) _out.Dispose();
    }
}
