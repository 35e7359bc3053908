using MtaSts.Actors.Configuration;

namespace MtaSts.Actors.TestInfra.Config;

/// <summary>Configuration values by full path (<c>mtasts.dns.timeout</c>) for the options records' unit tests: what the
/// gateway's HOCON source gives a <see cref="ConfigSection"/>, without HOCON.</summary>
public sealed class DictionaryConfigSource(IReadOnlyDictionary<string, string> values, IReadOnlyDictionary<string, string[]>? lists = null) : IConfigSource
{
    public bool Has(string path) => values.ContainsKey(path) || lists?.ContainsKey(path) == true
        || values.Keys.Any(k => k.StartsWith(path + ".", StringComparison.Ordinal));

    public string? Value(string path) => values.GetValueOrDefault(path);

    public IReadOnlyList<string>? List(string path) => lists?.GetValueOrDefault(path);

    public IReadOnlyList<KeyValuePair<string, string>> Entries(string path) =>
        values.Where(kv => kv.Key.StartsWith(path + ".", StringComparison.Ordinal))
            .Select(kv => new KeyValuePair<string, string>(kv.Key[(path.Length + 1)..], kv.Value)).ToArray();

    /// <summary>Reads section <paramref name="path"/> with <paramref name="read"/>: the options and the errors recorded.</summary>
    public static (T Options, List<string> Errors) Read<T>(string path, Func<ConfigSection, T> read,
        IReadOnlyDictionary<string, string> values, IReadOnlyDictionary<string, string[]>? lists = null)
    {
        var errors = new List<string>();
        return (read(new ConfigSection(new DictionaryConfigSource(values, lists), path, errors)), errors);
    }
}
