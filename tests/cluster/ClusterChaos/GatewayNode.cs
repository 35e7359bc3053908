using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using MtaSts.Actors.LoadTests.Targets;

namespace MtaSts.Actors.ClusterChaos;

/// <summary>What the last health poll said about a node. <see cref="PeerUnreachable"/>: an Up member that sees an
/// unreachable member (its intake is closed until the split-brain resolver decides, but it is still a member that can
/// deliver); <see cref="NotUp"/>: not an Up member, shutting down, or paused.</summary>
internal enum NodeHealth { Unknown, Up, NotUp, PeerUnreachable, Unresponsive, Exited }

/// <summary>
/// One gateway OS process (<c>dotnet mtasts-gateway.dll serve --config …</c>), restartable on the same data directory.
/// Signals go to its PID only (the process we started); it is polled on /health/ready to know whether it is an Up member.
/// </summary>
internal sealed class GatewayNode(ClusterNode spec, string gatewayDll, IReadOnlyList<string> configFiles, string workDir, Func<TimeSpan> clock,
    IReadOnlyList<KeyValuePair<string, string>> runtimeSettings)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };
    private static readonly HashSet<Process> Live = [];

    /// <summary>SIGKILL every gateway process this driver started and that still runs (on SIGTERM/SIGINT of the driver).</summary>
    public static void KillAllStarted()
    {
        lock (Live)
            foreach (var p in Live)
                try { if (!p.HasExited) { SysKill(p.Id, SigCont); SysKill(p.Id, SigKill); } }
                catch (InvalidOperationException) { }
    }
    private Process? _process;
    private StreamWriter? _out;
    private volatile NodeHealth _health = NodeHealth.Unknown;

    public ClusterNode Spec { get; } = spec;
    public int Index => Spec.Index;
    public int Generation { get; private set; }
    public bool Stopped { get; private set; }               // SIGSTOPped by us
    /// <summary>The process ended without a signal from us (e.g. exit 4: downed by the cluster), as systemd would see it.</summary>
    private volatile bool _signalledToEnd;
    private readonly object _startLock = new();

    /// <summary>systemd's Restart=on-failure: starts the node again when its process ended without a signal from us
    /// (e.g. exit 4: downed by the cluster). Returns the exit code it restarted after, or null.</summary>
    public int? RestartIfExitedOnItsOwn()
    {
        lock (_startLock)
        {
            if (_process is not { HasExited: true } p || _signalledToEnd) return null;
            var code = p.ExitCode;
            Start();
            return code;
        }
    }
    public bool Running => _process is { HasExited: false };
    public int? Pid => Running ? _process!.Id : null;
    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;
    public NodeHealth Health => _health;
    /// <summary>Health transitions (time, state, detail) for the report.</summary>
    public List<(TimeSpan At, NodeHealth State, string Detail)> Timeline { get; } = [];
    /// <summary>Every poll's answer (time it was answered, state): a 250 is judged by the polls on both sides of it.</summary>
    public List<(TimeSpan At, NodeHealth State)> Polls { get; } = [];

    /// <summary>True when every poll answered from 1 s before <paramref name="from"/> to 1 s after <paramref name="to"/>
    /// (at least one) said the node was not an Up member (or gone): a state that lasted across the whole SMTP transaction,
    /// not a flip within a poll interval, nor a poll or a reply that the loaded machine delivered late.</summary>
    public bool NotUpThroughout(TimeSpan from, TimeSpan to)
    {
        lock (Polls)
        {
            var around = Polls.Where(p => p.At >= from - TimeSpan.FromSeconds(1) && p.At <= to + TimeSpan.FromSeconds(1)).ToList();
            return around.Count > 0 && around.All(p => p.State is NodeHealth.NotUp or NodeHealth.Exited);
        }
    }

    public IPEndPoint Smtp => new(IPAddress.Loopback, Spec.SmtpPort);

    /// <summary>Starts the process (a new generation on the same data directory); no-op while one runs.</summary>
    public void Start()
    {
        lock (_startLock)
            if (!Running) StartLocked();
    }

    private void StartLocked()
    {
        Generation++;
        Stopped = false;
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workDir };
        psi.ArgumentList.Add(gatewayDll);
        psi.ArgumentList.Add("serve");
        foreach (var c in configFiles) { psi.ArgumentList.Add("--config"); psi.ArgumentList.Add(c); }
        // The node runs with its shipped runtime settings (the systemd unit's DOTNET_* lines, as the load harness applies
        // them); MTASTS_* of the shell would override its files.
        psi.Environment.Remove("DOTNET_gcServer");
        psi.Environment.Remove("DOTNET_TieredPGO");
        foreach (var v in ClusterNodeConfig.ScrubbedEnvironment) psi.Environment.Remove(v);
        foreach (var (name, value) in runtimeSettings) psi.Environment[name] = value;
        if (_out is { } previous) lock (previous) previous.Dispose();
        var output = new StreamWriter(Path.Combine(workDir, $"node{Index}-{Generation}.out")) { AutoFlush = true };
        _out = output;
        var p = new Process { StartInfo = psi };
        // The previous generation's last lines may still arrive after its writer was closed by a restart.
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) { try { output.WriteLine(e.Data); } catch (ObjectDisposedException) { } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) { try { output.WriteLine("ERR " + e.Data); } catch (ObjectDisposedException) { } } };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _process = p;
        _signalledToEnd = false;
        lock (Live) { Live.RemoveWhere(x => x.HasExited); Live.Add(p); }
        SetHealth(NodeHealth.Unknown, $"started pid {p.Id} (generation {Generation})");
    }

    /// <summary>Waits until the listener answers 220. False if the process exits or the time runs out.</summary>
    public async Task<bool> WaitListeningAsync(TimeSpan timeout)
    {
        var until = clock() + timeout;
        while (clock() < until)
        {
            if (!Running) return false;
            if (await BannerAsync().ConfigureAwait(false)) return true;
            await Task.Delay(200).ConfigureAwait(false);
        }
        return false;
    }

    private async Task<bool> BannerAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            using var c = new TcpClient();
            await c.ConnectAsync(IPAddress.Loopback, Spec.SmtpPort, cts.Token).ConfigureAwait(false);
            using var reader = new StreamReader(c.GetStream());
            var line = await reader.ReadLineAsync(cts.Token).ConfigureAwait(false);
            if (line is null || !line.StartsWith("220", StringComparison.Ordinal)) return false;
            await c.GetStream().WriteAsync("QUIT\r\n"u8.ToArray(), cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException) { return false; }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int sig);

    private const int SigKill = 9, SigTerm = 15, SigCont = 18, SigStop = 19;

    public void Kill()
    {
        if (_process is null || _process.HasExited) return;
        _signalledToEnd = true;
        if (Stopped) SysKill(_process.Id, SigCont);
        SysKill(_process.Id, SigKill);
        _process.WaitForExit(10_000);
        Stopped = false;
        SetHealth(NodeHealth.Exited, "SIGKILL");
    }

    public void Pause()
    {
        if (Pid is not { } pid) return;
        SysKill(pid, SigStop);
        Stopped = true;
        SetHealth(NodeHealth.Unresponsive, "SIGSTOP");
    }

    public void Resume()
    {
        if (Pid is not { } pid) return;
        SysKill(pid, SigCont);
        Stopped = false;
        SetHealth(NodeHealth.Unknown, "SIGCONT");
    }

    /// <summary>SIGTERM, then SIGKILL if it has not exited within <paramref name="grace"/>. Returns the way it ended.</summary>
    public async Task<string> TerminateAsync(TimeSpan grace)
    {
        if (_process is null) return "not started";
        if (_process.HasExited) return $"had exited (code {_process.ExitCode})";
        if (Stopped) Resume();
        var t0 = clock();
        _signalledToEnd = true;
        SysKill(_process.Id, SigTerm);
        using var cts = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            SetHealth(NodeHealth.Exited, $"SIGTERM, exit {_process.ExitCode}");
            return $"SIGTERM → exit {_process.ExitCode} after {(clock() - t0).TotalSeconds:F1}s";
        }
        catch (OperationCanceledException)
        {
            Kill();
            return $"SIGTERM ignored for {grace.TotalSeconds:F0}s → SIGKILL";
        }
    }

    /// <summary>One poll of /health/ready: Up = the cluster check is healthy (an Up member, actor system alive).</summary>
    public async Task PollAsync()
    {
        if (_process is null) return;
        if (_process.HasExited) { SetHealth(NodeHealth.Exited, $"exit code {_process.ExitCode}"); return; }
        if (Stopped) return;
        try
        {
            using var resp = await Http.GetAsync($"http://127.0.0.1:{Spec.AdminPort}/health/ready").ConfigureAwait(false);
            var body = await resp.Content.ReadAsStringAsync().ConfigureAwait(false);
            using var doc = JsonDocument.Parse(body);
            var cluster = doc.RootElement.TryGetProperty("checks", out var checks) && checks.TryGetProperty("cluster", out var c) ? c : default;
            var up = cluster.ValueKind == JsonValueKind.Object && cluster.GetProperty("status").GetString() == "healthy";
            var detail = cluster.ValueKind == JsonValueKind.Object && cluster.TryGetProperty("detail", out var d) ? d.GetString() ?? "" : "no cluster check";
            SetHealth(up ? NodeHealth.Up
                : detail.Contains("unreachable; waiting for the split-brain resolver", StringComparison.Ordinal) ? NodeHealth.PeerUnreachable
                : NodeHealth.NotUp, detail);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException or InvalidOperationException or KeyNotFoundException)
        {
            // The admin endpoint may not be up yet while starting; after it was Up, no answer means unresponsive.
            if (_health != NodeHealth.Unknown) SetHealth(NodeHealth.Unresponsive, ex.GetType().Name);
        }
    }

    private void SetHealth(NodeHealth state, string detail)
    {
        lock (Polls) Polls.Add((clock(), state));
        lock (Timeline)
        {
            if (_health == state && Timeline.Count > 0) return;
            _health = state;
            Timeline.Add((clock(), state, detail));
        }
    }
}
