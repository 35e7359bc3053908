using System.Net;
using System.Net.Sockets;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Tests.Hosting;

/// <summary>In process: a start that fails on a taken port gives back the data directory; a second gateway on a
/// directory in use fails before touching it. Both write a Critical line to the operator log.</summary>
public sealed class GatewayExclusiveStartTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mtasts-exclusive-" + Guid.NewGuid().ToString("N"));
    private string DataDir => Path.Combine(_dir, "data");

    private GatewayConfig Config(int port) => GatewayConfig.Load(GatewayConfig.DefaultFiles(), $$"""
        mtasts {
          data-dir = "{{DataDir.Replace("\\", "/")}}"
          listener.endpoints = ["127.0.0.1:{{port}}"]
          log.text = ""
        }
        """);

    [Fact]
    public async Task A_start_failing_on_a_taken_port_releases_the_data_directory_and_a_second_gateway_on_it_fails()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var text = new StringWriter();
        var log = TextWriter.Synchronized(text);

        var bind = await Assert.ThrowsAsync<ListenerBindException>(() => Gateway.StartAsync(Config(port), new GatewayOverrides { LogWriter = log }));
        Assert.Equal($"SMTP listener cannot bind 127.0.0.1:{port}: address already in use (another gateway or MTA is listening on this port)", bind.Message);
        Assert.Contains($"Critical: {bind.Message}", text.ToString(), StringComparison.Ordinal);

        // The failed start stopped what it had started and gave the directory back.
        await using var gw = await Gateway.StartAsync(Config(0));

        var inUse = await Assert.ThrowsAsync<DataDirectoryInUseException>(() => Gateway.StartAsync(Config(0), new GatewayOverrides { LogWriter = log }));
        var lockFile = Path.Combine(DataDir, DataDirectoryLock.FileName);
        Assert.Equal($"data directory {DataDir} is in use by another gateway (pid {Environment.ProcessId}; lock file {lockFile})", inUse.Message);
        Assert.Contains($"Critical: {inUse.Message}", text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dispose_releases_the_data_directory_for_the_next_gateway()
    {
        var first = await Gateway.StartAsync(Config(0));
        await first.DisposeAsync();
        await using var second = await Gateway.StartAsync(Config(0));
        Assert.NotEmpty(second.SmtpEndpoints);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
