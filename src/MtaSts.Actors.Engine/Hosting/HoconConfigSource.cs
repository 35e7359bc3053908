using Akka.Configuration;
using Akka.Configuration.Hocon;
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

    public IReadOnlyList<IReadOnlyList<KeyValuePair<string, string?>>?>? Objects(string path)
    {
        if (!hocon.HasPath(path)) return null;
        var value = hocon.GetValue(path);
        // Akka's IsArray() is false for an empty array "[]".
        if (!(value.IsArray() || (value.Values.Count > 0 && value.Values[0] is HoconArray))) return null;
        return value.GetArray().Select(item => item.IsObject()
            ? (IReadOnlyList<KeyValuePair<string, string?>>)item.GetObject().Items
                .Select(kv => new KeyValuePair<string, string?>(kv.Key, Scalar(kv.Value))).ToArray()
            : null).ToArray();
    }

    public IReadOnlyList<string>? Keys(string path) =>
        hocon.HasPath(path) && hocon.GetValue(path) is { } v && v.IsObject() ? v.GetObject().Items.Keys.ToArray() : null;

    /// <summary>The text of a single value; null for an object or a list.</summary>
    public static string? Scalar(HoconValue v) =>
        v.IsObject() || v.IsArray() || (v.Values.Count > 0 && v.Values[0] is HoconArray) || !v.IsString() ? null : v.GetString();
}
