using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Tests.Hosting;

/// <summary>An imported destconfig file (<c>&lt;data-dir&gt;/destconfig.conf</c>) replaces the destination sections of
/// the configuration files while it exists; the watcher picks it up when it appears, changes or goes away; a broken one
/// keeps the previous profiles in force (and a broken one at start is a configuration error naming the file).</summary>
public sealed class DestConfigInstallTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mtasts-destconfig-").FullName;
    private string DataDir => Path.Combine(_dir, "data");
    private string Imported => Path.Combine(DataDir, DestConfigFile.FileName);

    private GatewayConfig Load() => GatewayConfig.Load([], $$"""
        mtasts.data-dir = "{{DataDir}}"
        mtasts.destinations {
          default { max-concurrent-connections = 11 }
          "files.test" { max-concurrent-connections = 3 }
        }
        """);

    private static void Write(string path, string text)
    {
        File.WriteAllText(path, text);
        // A later write within the file system's timestamp granularity must still count as a change.
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(Random.Shared.Next(1, 1000)));
    }

    [Fact]
    public void The_imported_file_replaces_the_profiles_while_it_exists_and_the_watcher_follows_it()
    {
        Directory.CreateDirectory(DataDir);
        var initial = Load();
        Assert.False(initial.DestConfigImported);
        Assert.Equal(Imported, initial.DestConfigFile);
        Assert.Equal(3, initial.Destinations.Profiles.Resolve("files.test").MaxConcurrentConnections);

        using var log = new StringWriter();
        using var watcher = new ConfigWatcher(initial, new MailLog(log, null, MailLogLevel.Info));
        Write(Imported, "mtasts.destinations {\n default { max-concurrent-connections = 22 }\n \"imported.test\" { max-concurrent-connections = 5 }\n}");
        Assert.True(watcher.Check());
        Assert.Equal(22, watcher.Current.Profiles.Default.MaxConcurrentConnections);
        Assert.Equal(5, watcher.Current.Profiles.Resolve("imported.test").MaxConcurrentConnections);
        Assert.Equal(22, watcher.Current.Profiles.Resolve("files.test").MaxConcurrentConnections); // replaced, not merged
        Assert.Contains("(destconfig import)", log.ToString());

        Write(Imported, "mtasts.destinations { default { max-concurrent-connections = 0 } }");
        Assert.False(watcher.Check()); // broken: the previous profiles stay
        Assert.Equal(22, watcher.Current.Profiles.Default.MaxConcurrentConnections);
        Assert.Contains("max-concurrent-connections = 0 is out of range", log.ToString());

        File.Delete(Imported);
        Assert.True(watcher.Check()); // gone: back to the configuration files
        Assert.Equal(3, watcher.Current.Profiles.Resolve("files.test").MaxConcurrentConnections);
        Assert.False(watcher.Gateway.DestConfigImported);
    }

    [Fact]
    public void A_broken_imported_file_at_start_is_a_configuration_error_naming_it()
    {
        Directory.CreateDirectory(DataDir);
        File.WriteAllText(Imported, "mtasts.destinations {\n  default {\n    tls-suport = none\n  }\n}\n");
        var e = Assert.Throws<GatewayConfigException>(Load);
        Assert.Contains($"{Imported}: line 3: destination \"default\": unknown setting \"tls-suport\" (did you mean \"tls-support\"?)", e.Errors);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
