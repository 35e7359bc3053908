namespace MtaSts.Actors.Host.Tests.Admin;

/// <summary><c>mtasts-gateway config</c>: validates the configuration and lists the destination profiles.</summary>
public sealed class ConfigCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mtasts-config-cmd-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task The_profile_list_shows_bounce_verification()
    {
        var file = Path.Combine(_dir, "gateway.conf");
        await File.WriteAllTextAsync(file, $$"""
            mtasts.data-dir = "{{Path.Combine(_dir, "data")}}"
            mtasts.bounce-verification { keys = [{ id = 1, secret = "0123456789abcdef" }], domains = ["sender.test"] }
            mtasts.destinations { "tagged.test" { bounce-verification = on } }
            """);

        var run = await CliRun.RunAsync(null, "config", "--config", file);

        Assert.True(run.Exit == 0, run.ToString());
        var lines = run.Stdout.Split('\n');
        Assert.Contains(lines, l => l.TrimStart().StartsWith("tagged.test ") && l.Contains("bounce-verification on "));
        Assert.Contains(lines, l => l.TrimStart().StartsWith("default ") && l.Contains("bounce-verification off "));
    }
}
