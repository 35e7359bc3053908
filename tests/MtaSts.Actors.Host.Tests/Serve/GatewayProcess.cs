using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace MtaSts.Actors.Host.Tests.Serve;

/// <summary>
/// The real gateway as an OS process: <c>dotnet mtasts-gateway.dll serve --config FILE</c> (the build of
/// src/MtaSts.Actors.Host in this test's configuration, as the load and crash tests run it), both streams captured.
/// </summary>
public sealed class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private GatewayProcess(Process process) => _process = process;

    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    public static string Dll => FindDll();

    public static GatewayProcess Start(string configFile, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(configFile)!,
        };
        psi.ArgumentList.Add(Dll);
        psi.ArgumentList.Add("serve");
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(configFile);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var p = new Process { StartInfo = psi };
        var gw = new GatewayProcess(p);
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (gw._stdout) gw._stdout.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (gw._stderr) gw._stderr.AppendLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return gw;
    }

    /// <summary>Exit code, or null when the process is still running after <paramref name="timeout"/>.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
            return _process.ExitCode;
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Waits until the gateway answers 220 on <paramref name="port"/>; false if it exited or the time ran out.</summary>
    public async Task<bool> WaitForGreetingAsync(int port, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            if (await GreetingAsync(port) is { } g && g.StartsWith("220 ", StringComparison.Ordinal)) return true;
            await Task.Delay(200);
        }
        return false;
    }

    /// <summary>Waits for the 220 on <paramref name="smtpPort"/>, then for <c>health/live</c> through
    /// <paramref name="admin"/>: serve starts the admin endpoint after the SMTP listener, so a test right after the 220
    /// could find it closed. Throws when the gateway exits or the time runs out.</summary>
    public async Task WaitForAdminAsync(int smtpPort, HttpClient admin, TimeSpan timeout)
    {
        if (!await WaitForGreetingAsync(smtpPort, timeout)) throw new InvalidOperationException($"gateway did not answer 220: {this}");
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                if ((await admin.GetAsync("health/live")).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            if (HasExited || DateTime.UtcNow > deadline) throw new InvalidOperationException($"admin endpoint not up: {this}");
            await Task.Delay(200);
        }
    }

    /// <summary>A file the gateway is still appending to (its mail log), read whole.</summary>
    public static string ReadShared(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(f).ReadToEnd();
    }

    /// <summary>The first line a connection to 127.0.0.1:<paramref name="port"/> gets (then QUIT), or null.</summary>
    public static async Task<string?> GreetingAsync(int port)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var tcp = new TcpClient(AddressFamily.InterNetwork);
            await tcp.ConnectAsync(IPAddress.Loopback, port, cts.Token);
            var stream = tcp.GetStream();
            using var reader = new StreamReader(stream, Encoding.ASCII);
            var line = await reader.ReadLineAsync(cts.Token);
            await stream.WriteAsync("QUIT\r\n"u8.ToArray(), cts.Token);
            await reader.ReadLineAsync(cts.Token);
            return line;
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Sends a POSIX signal (9 SIGKILL, 19 SIGSTOP, 18 SIGCONT on Linux) to this process, by its PID.</summary>
    public void Signal(int signal)
    {
        if (SysKill(_process.Id, signal) != 0) throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public override string ToString() =>
        $"pid {Pid}, {(HasExited ? $"exit {ExitCode}" : "running")}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";

    /// <summary>Graceful stop (SIGTERM, as an operator or systemd would), SIGKILL if it has not exited within 60 s.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _ = SysKill(_process.Id, 15);
            if (await WaitForExitAsync(TimeSpan.FromSeconds(60)) is null)
            {
                _process.Kill(entireProcessTree: true);
                await WaitForExitAsync(TimeSpan.FromSeconds(30));
            }
        }
        _process.Dispose();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int sig);

    private static string FindDll()
    {
        // This test runs from tests/MtaSts.Actors.Host.Tests/bin/<Configuration>/net10.0/; the gateway it references
        // was built into src/MtaSts.Actors.Host/bin/<Configuration>/net10.0/.
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = baseDir.Parent?.Name ?? "Release";
        for (var d = baseDir; d is not null; d = d.Parent)
        {
            if (!File.Exists(Path.Combine(d.FullName, "MtaSts.Actors.sln"))) continue;
            foreach (var cfg in new[] { configuration, "Release", "Debug" })
            {
                var dll = Path.Combine(d.FullName, "src", "MtaSts.Actors.Host", "bin", cfg, "net10.0", "mtasts-gateway.dll");
                if (File.Exists(dll)) return dll;
            }
        }
        throw new FileNotFoundException("mtasts-gateway.dll not found under src/MtaSts.Actors.Host/bin (dotnet build src/MtaSts.Actors.Host)");
    }
}
