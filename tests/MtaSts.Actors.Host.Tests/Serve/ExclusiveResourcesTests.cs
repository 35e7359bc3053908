using MtaSts.Actors.TestInfra.Net;

namespace MtaSts.Actors.Host.Tests.Serve;

/// <summary>Gateway A, running as its own process on a free port and a temp data directory, shared by the tests; its
/// operator log file is shared too (log.text), as with two gateways started on the same configuration.</summary>
public sealed class RunningGateway : IAsyncLifetime
{
    public static readonly TimeSpan Generous = TimeSpan.FromMinutes(2);

    public string Work { get; } = Directory.CreateTempSubdirectory("mtasts-exclusive-").FullName;
    public int Port { get; } = LoopbackPort.Free();
    public string DataDir => Path.Combine(Work, "data-a");
    public string MailLog => Path.Combine(Work, "mail.log");
    public GatewayProcess A { get; private set; } = null!;

    /// <summary>Writes a config file for a gateway on <paramref name="port"/> and <paramref name="dataDir"/>.</summary>
    public string Config(string name, int port, string dataDir)
    {
        var file = Path.Combine(Work, name + ".conf");
        File.WriteAllText(file, $$"""
            mtasts {
              data-dir = "{{dataDir}}"
              listener.endpoints = ["127.0.0.1:{{port}}"]
              admin.endpoints = ["127.0.0.1:0"]
              log.text = "{{MailLog}}"
            }
            """);
        return file;
    }

    public async Task InitializeAsync()
    {
        A = GatewayProcess.Start(Config("a", Port, DataDir));
        if (!await A.WaitForGreetingAsync(Port, Generous))
            throw new InvalidOperationException($"gateway A did not answer 220 on port {Port}: {A}");
    }

    public string[] LogLines()
    {
        using var s = new FileStream(MailLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(s).ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>Waits until the operator log satisfies <paramref name="match"/> (lines are written asynchronously).</summary>
    public async Task WaitForLogAsync(Func<string[], bool> match, string what)
    {
        var deadline = DateTime.UtcNow + Generous;
        while (!match(LogLines()))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what} not in the operator log:\n{string.Join("\n", LogLines())}");
            await Task.Delay(100);
        }
    }

    public async Task DisposeAsync()
    {
        if (A is not null) await A.DisposeAsync();
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public sealed class ExclusiveResourcesTests(RunningGateway gw) : IClassFixture<RunningGateway>
{
    [Fact]
    public async Task A_second_gateway_on_the_same_port_exits_2_naming_the_port_and_the_first_keeps_serving()
    {
        await using var b = GatewayProcess.Start(gw.Config("b", gw.Port, Path.Combine(gw.Work, "data-b")));

        Assert.True(await b.WaitForExitAsync(RunningGateway.Generous) == 2, $"gateway B: {b}");
        var message = $"SMTP listener cannot bind 127.0.0.1:{gw.Port}: address already in use (another gateway or MTA is listening on this port)";
        Assert.Equal($"mtasts-gateway: {message}", b.Stderr.Trim());
        Assert.False(gw.A.HasExited, $"gateway A: {gw.A}");
        Assert.StartsWith("220 ", await GatewayProcess.GreetingAsync(gw.Port));
        // The Critical line is in the shared operator log, and stays intact when A appends its own lines after it
        // (the connection just made): both processes append, neither overwrites the other.
        await gw.WaitForLogAsync(lines => Array.FindIndex(lines, l => l.EndsWith($"Critical: {message}", StringComparison.Ordinal)) is var i and >= 0
            && lines.Skip(i + 1).Any(l => l.Contains("Info: New SMTP ICID", StringComparison.Ordinal)), "B's Critical line, then A's next connection");
    }

    [Fact]
    public async Task A_second_gateway_on_the_same_data_directory_exits_2_naming_the_directory_and_the_holder()
    {
        await using var c = GatewayProcess.Start(gw.Config("c", LoopbackPort.Free(), gw.DataDir));

        Assert.True(await c.WaitForExitAsync(RunningGateway.Generous) == 2, $"gateway C: {c}");
        var message = $"data directory {gw.DataDir} is in use by another gateway (pid {gw.A.Pid}; lock file {Path.Combine(gw.DataDir, "gateway.lock")})";
        Assert.Equal($"mtasts-gateway: {message}", c.Stderr.Trim());
        Assert.False(gw.A.HasExited, $"gateway A: {gw.A}");
        Assert.StartsWith("220 ", await GatewayProcess.GreetingAsync(gw.Port));
        await gw.WaitForLogAsync(lines => lines.Any(l => l.EndsWith($"Critical: {message}", StringComparison.Ordinal)), "C's Critical line");
    }

    [Fact]
    public async Task The_data_directory_lock_holds_even_when_dotnet_file_locking_is_switched_off()
    {
        await using var d = GatewayProcess.Start(gw.Config("d", LoopbackPort.Free(), gw.DataDir),
            new Dictionary<string, string> { ["DOTNET_SYSTEM_IO_DISABLEFILELOCKING"] = "1" });

        Assert.True(await d.WaitForExitAsync(RunningGateway.Generous) == 2, $"gateway D: {d}");
        Assert.Contains($"data directory {gw.DataDir} is in use by another gateway (pid {gw.A.Pid}", d.Stderr, StringComparison.Ordinal);
        Assert.False(gw.A.HasExited, $"gateway A: {gw.A}");
    }
}
