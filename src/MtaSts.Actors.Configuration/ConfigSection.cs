using System.Globalization;
using System.Net;

namespace MtaSts.Actors.Configuration;

/// <summary>Where configuration values come from, by full path (<c>mtasts.listener.max-recipients</c>). The engine
/// adapts its HOCON configuration; features never see the parser.</summary>
public interface IConfigSource
{
    bool Has(string path);

    /// <summary>The value at <paramref name="path"/> as text, or null when it is not set (or not text).</summary>
    string? Value(string path);

    /// <summary>The list at <paramref name="path"/>, or null when it is not set.</summary>
    IReadOnlyList<string>? List(string path);

    /// <summary>The key/value pairs of the object at <paramref name="path"/> (empty when it is not set); a list value is
    /// given as its items joined with commas.</summary>
    IReadOnlyList<KeyValuePair<string, string>> Entries(string path);

    /// <summary>The items of the list of objects at <paramref name="path"/>, each as its key/value pairs (a value that
    /// is itself an object or a list is null; an item that is not an object is null); null when the path is not set or
    /// is not a list. Sources without lists of objects keep the default.</summary>
    IReadOnlyList<IReadOnlyList<KeyValuePair<string, string?>>?>? Objects(string path) => null;

    /// <summary>The keys of the object at <paramref name="path"/> (null when unknown to this source).</summary>
    IReadOnlyList<string>? Keys(string path) => null;
}

/// <summary>One section of the gateway's configuration (e.g. <c>mtasts.listener</c>) as the feature that owns it
/// reads it: typed values with their default, and every bad value collected as an error that names its full key
/// (a load or reload reports them all at once), never thrown.</summary>
public sealed class ConfigSection(IConfigSource source, string path, List<string> errors)
{
    /// <summary>The full path of this section, e.g. <c>mtasts.listener</c>.</summary>
    public string Path => path;

    public ConfigSection Section(string name) => new(source, Key(name), errors);

    public bool Has(string key) => source.Has(Key(key));

    public string? Value(string key) => source.Has(Key(key)) ? source.Value(Key(key)) : null;

    public string? NonEmpty(string key) => Value(key) is { Length: > 0 } s ? s : null;

    public IReadOnlyList<string> List(string key) => source.List(Key(key)) ?? [];

    public IReadOnlyList<KeyValuePair<string, string>> Entries(string key) => source.Entries(Key(key));

    /// <summary>The list of objects at <paramref name="key"/> (see <see cref="IConfigSource.Objects"/>); null when it is
    /// not set. A value that is set but is not a list records an error naming the key.</summary>
    public IReadOnlyList<IReadOnlyList<KeyValuePair<string, string?>>?>? Objects(string key)
    {
        if (!Has(key)) return null;
        var items = source.Objects(Key(key));
        if (items is null) errors.Add($"{Key(key)} must be a list of objects [ {{ ... }}, {{ ... }} ]");
        return items;
    }

    /// <summary>Records an error for every key of this section that is not in <paramref name="known"/> (a typo must not
    /// fall back to a default silently). Sources that cannot list keys check nothing.</summary>
    public void RefuseUnknownKeys(params string[] known)
    {
        foreach (var key in source.Keys(path) ?? [])
            if (!known.Contains(key)) errors.Add($"{Key(key)}: unknown setting (known: {string.Join(", ", known)})");
    }

    /// <summary>The full name of <paramref name="key"/> in this section (for error messages).</summary>
    public string FullKey(string key) => Key(key);

    /// <summary>The parsed value, or <paramref name="fallback"/> when the key is not set or its value is bad (then an
    /// error <c>path.key = "value": why</c> is recorded).</summary>
    public T Get<T>(string key, T fallback, Func<string, T> parse)
    {
        if (!Has(key)) return fallback;
        var raw = source.Value(Key(key)) ?? ""; // a list's text: parse reads the list itself
        try { return parse(raw); }
        catch (Exception ex)
        {
            errors.Add($"{Key(key)} = \"{raw}\": {ex.Message}");
            return fallback;
        }
    }

    public int Int(string key, int fallback, int min, int max) => Get(key, fallback, s =>
    {
        var v = int.Parse(s, CultureInfo.InvariantCulture);
        return v < min || v > max ? throw new FormatException($"out of range {min}..{max}") : v;
    });

    /// <summary>true/on/yes or false/off/no (HOCON's boolean spellings).</summary>
    public bool Bool(string key, bool fallback) => Get(key, fallback, s => s.Trim().ToLowerInvariant() switch
    {
        "true" or "on" or "yes" => true,
        "false" or "off" or "no" => false,
        _ => throw new FormatException("expected true or false"),
    });

    public long Long(string key, long fallback) => Get(key, fallback, s => long.Parse(s, CultureInfo.InvariantCulture));

    public TimeSpan Duration(string key, TimeSpan fallback) => Get(key, fallback, s =>
        TryParseDuration(s, out var d) ? d : throw new FormatException("not a duration (e.g. 30s, 5m, 1h)"));

    /// <summary>Records an error (its text names the key or keys).</summary>
    public void Error(string message) => errors.Add(message);

    /// <summary>Runs a validation of several keys together; an <see cref="ArgumentException"/> it throws becomes the
    /// error <c>path: message</c>.</summary>
    public void Validate(Action validate)
    {
        try { validate(); }
        catch (ArgumentException e) { Error($"{path}: {e.Message.Split(" (Parameter")[0]}"); }
    }

    /// <summary><c>address:port</c>, or an address alone (then <paramref name="defaultPort"/>).</summary>
    public static IPEndPoint ParseEndPoint(string s, int defaultPort) =>
        IPEndPoint.TryParse(s, out var ep) ? (ep.Port == 0 && !s.Contains(':') ? new IPEndPoint(ep.Address, defaultPort) : ep)
            : throw new FormatException($"'{s}' is not an address:port");

    private string Key(string key) => path + "." + key;

    /// <summary>A number with a unit: <c>500ms</c>, <c>60s</c>, <c>5m</c>, <c>72h</c>, <c>3d</c>. A bare number is refused
    /// (Akka reads it as milliseconds, people mean seconds).</summary>
    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        var s = text.Trim();
        var i = 0;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
        if (i == 0 || !decimal.TryParse(s[..i], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)) return false;
        var unit = s[i..].Trim().ToLowerInvariant();
        long? per = unit switch
        {
            "ms" => TimeSpan.TicksPerMillisecond,
            "s" or "sec" or "second" or "seconds" => TimeSpan.TicksPerSecond,
            "m" or "min" or "minute" or "minutes" => TimeSpan.TicksPerMinute,
            "h" or "hour" or "hours" => TimeSpan.TicksPerHour,
            "d" or "day" or "days" => TimeSpan.TicksPerDay,
            _ => null,
        };
        if (per is null) return false;
        var ticks = n * per.Value;
        if (ticks > TimeSpan.MaxValue.Ticks) return false;
        value = TimeSpan.FromTicks((long)ticks);
        return true;
    }
}
