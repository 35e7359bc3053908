using MtaSts.Actors.TestInfra.Net;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MtaSts.Actors.TestInfra.Proxy;

/// <summary>
/// A real HTTP proxy: Debian's tinyproxy (installed by tests/setup-env.sh) on a free loopback port with a generated
/// config, in the foreground, killed on dispose. Test host names are not in any DNS the proxy can see, so
/// <paramref name="hosts"/> entries are given to it through a private /etc/hosts: tinyproxy runs in its own
/// mount namespace (<c>unshare -m</c>) with a bind-mounted hosts file. Nothing outside that namespace changes.
/// </summary>
public sealed class TinyproxyInstance : IAsyncDisposable
{
    public const string BinaryPath = "/usr/bin/tinyproxy";

    private readonly Process _process;
    private readonly string _dir;
    private readonly StringBuilder _output = new();

    public static bool IsAvailable => File.Exists(BinaryPath);

    public int Port { get; }
    public Uri Uri => new($"http://127.0.0.1:{Port}");
    public string LogPath => Path.Combine(_dir, "tinyproxy.log");
    public string Output { get { lock (_output) return _output.ToString(); } }

    private TinyproxyInstance(Process process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    /// <param name="hosts">Name → address entries the proxy must resolve (e.g. mta-sts.example.test → 127.0.0.1).</param>
    public static async Task<TinyproxyInstance> StartAsync(IReadOnlyDictionary<string, IPAddress>? hosts = null, CancellationToken ct = default)
    {
        if (!IsAvailable) throw new InvalidOperationException($"{BinaryPath} is missing: run tests/setup-env.sh as root");
        var dir = Directory.CreateTempSubdirectory("tinyproxy-").FullName;
        var port = LoopbackPort.Free();
        var conf = Path.Combine(dir, "tinyproxy.conf");
        // No ConnectPort lines: CONNECT is allowed to any port (the test HTTPS server uses an ephemeral one).
        var config = new StringBuilder()
            .AppendLine($"Port {port}")
            .AppendLine("Listen 127.0.0.1")
            .AppendLine("Timeout 30")
            .AppendLine("MaxClients 50")
            .AppendLine("LogLevel Info")
            .AppendLine("Allow 127.0.0.1")
            .AppendLine("DisableViaHeader Yes");
        if (Environment.UserName == "root") config.AppendLine("User root").AppendLine("Group root");
        await File.WriteAllTextAsync(conf, config.ToString(), ct);

        var psi = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (hosts is { Count: > 0 })
        {
            var hostsFile = Path.Combine(dir, "hosts");
            var lines = new StringBuilder("127.0.0.1 localhost\n::1 localhost\n");
            foreach (var (name, address) in hosts) lines.AppendLine($"{address} {name}");
            await File.WriteAllTextAsync(hostsFile, lines.ToString(), ct);
            psi.FileName = "unshare";
            psi.ArgumentList.Add("-m");
            psi.ArgumentList.Add("sh");
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add($"mount --bind '{hostsFile}' /etc/hosts && exec {BinaryPath} -d -c '{conf}'");
        }
        else
        {
            psi.FileName = BinaryPath;
            psi.ArgumentList.Add("-d");
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(conf);
        }

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var instance = new TinyproxyInstance(process, dir, port);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (instance._output) instance._output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (instance._output) instance._output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"tinyproxy exited with {process.ExitCode}: {instance.Output}");
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port, ct);
                return instance;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50, ct);
            }
            catch (SocketException)
            {
                await instance.DisposeAsync();
                throw new InvalidOperationException($"tinyproxy did not listen on {port} within 10s: {instance.Output}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
            }
        }
        catch (Exception) { }
        _process.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (Exception) { }
    }
}
