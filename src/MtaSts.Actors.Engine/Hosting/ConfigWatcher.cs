using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>
/// Live destination controls: the config files are re-read when they change (polled: no inotify limits, works
/// on every file system). A reload that fails validation is logged with every error and the previous good
/// configuration stays in force. Destinations read <see cref="Current"/> on every decision, so a change applies to
/// the next connection without a restart.
/// </summary>
public sealed class ConfigWatcher : IDisposable
{
    private readonly GatewayConfig _initial;
    private readonly MailLog _log;
    private readonly Dictionary<string, DateTime> _stamps = new();
    private Timer? _timer;
    private GatewayConfig _current;

    public ConfigWatcher(GatewayConfig initial, MailLog log, TimeSpan? interval = null)
    {
        _initial = initial;
        _log = log;
        _current = initial;
        Interval = interval ?? TimeSpan.FromSeconds(2);
        foreach (var f in Watched) _stamps[f] = Stamp(f);
    }

    // The configuration files and the imported destconfig file (which may appear, change or vanish).
    private IEnumerable<string> Watched => _initial.DestConfigFile is { } imported ? _initial.Files.Append(imported) : _initial.Files;

    public TimeSpan Interval { get; }
    /// <summary>The destination controls in force.</summary>
    public DestinationConfig Current => Volatile.Read(ref _current).Destinations;
    /// <summary>The whole configuration in force (virtual gateways); listener/akka settings need a restart.</summary>
    public GatewayConfig Gateway => Volatile.Read(ref _current);
    /// <summary>Raised after a new configuration was applied.</summary>
    public event Action? Reloaded;
    public long Reloads { get; private set; }

    public void Start() => _timer = new Timer(_ => Check(), null, Interval, Interval);

    /// <summary>Checks the files now; returns true when a new configuration was applied.</summary>
    public bool Check()
    {
        lock (_stamps) return CheckLocked();
    }

    private bool CheckLocked()
    {
        var changed = false;
        foreach (var f in Watched)
        {
            var s = Stamp(f);
            if (_stamps.GetValueOrDefault(f) != s) { _stamps[f] = s; changed = true; }
        }
        return changed && Reload();
    }

    public bool Reload()
    {
        try
        {
            var fresh = GatewayConfig.Load(_initial.Files, _initial.OverrideText);
            Volatile.Write(ref _current, fresh);
            Reloads++;
            _log.Info("config_reloaded", $"Destination controls reloaded from {string.Join(", ", _initial.Files.Select(Path.GetFileName))}"
                + (fresh.DestConfigImported ? $"; destination profiles from {fresh.DestConfigFile} (destconfig import)" : ""));
            Reloaded?.Invoke();
            return true;
        }
        catch (GatewayConfigException ex)
        {
            _log.Warning("config_reload_failed",
                $"Configuration reload failed; previous configuration stays in force: {string.Join("; ", ex.Errors)}",
                ("errors", ex.Errors.ToArray()));
            return false;
        }
    }

    private static DateTime Stamp(string f) => File.Exists(f) ? File.GetLastWriteTimeUtc(f) : DateTime.MinValue;

    public void Dispose() => _timer?.Dispose();
}
