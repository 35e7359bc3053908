using Akka.Configuration;
using MtaSts.Actors.Configuration;

namespace MtaSts.Actors.Engine.Hosting;

/// <summary>The gateway's HOCON as the source of the features' <see cref="ConfigSection"/>s.</summary>
public sealed class HoconConfigSource(Config hocon) : IConfigSource
{
    public bool Has(string path) => hocon.HasPath(path);

    public string? Value(string path) => hocon.GetString(path);

    public IReadOnlyList<string>? List(string path) => hocon.HasPath(path) ? hocon.GetStringList(path).ToArray() : null;

    public IReadOnlyList<KeyValuePair<string, string>> Entries(string path) => hocon.HasPath(path)
        ? hocon.GetConfig(path).AsEnumerable().Select(kv => new KeyValuePair<string, string>(kv.Key.Trim('"'), kv.Value.IsArray() ? string.Join(",", kv.Value.GetStringList()) : kv.Value.GetString())).ToArray()
        : [];
}
