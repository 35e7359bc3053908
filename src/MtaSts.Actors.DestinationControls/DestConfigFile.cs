using System.Text.RegularExpressions;
using Akka.Configuration;

namespace MtaSts.Actors.DestinationControls;

/// <summary>
/// A destconfig file (vendor <c>destconfig import</c>): <c>mtasts.destinations</c> and <c>mtasts.bounce-profiles</c>
/// and nothing else, validated by <see cref="DestinationConfigLoader"/>. Every error names its setting and, where
/// the text shows it, the line (<c>line 12: destination "example.com": max-concurrent-connections = 0 is out of range
/// 1..1000</c>). Nothing is valid unless everything is.
/// </summary>
public static partial class DestConfigFile
{
    /// <summary>The file name, in the data directory, that an imported configuration is installed as.</summary>
    public const string FileName = "destconfig.conf";

    public static ConfigLoadResult Validate(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Config config;
        try
        {
            if (text.Contains("${", StringComparison.Ordinal))
                return new ConfigLoadResult(null, [$"line {LineOf(text, "${")}: HOCON substitutions (${{...}}) are not supported in a destconfig file"]);
            config = ConfigurationFactory.ParseString(text);
        }
        catch (Exception e)
        {
            return new ConfigLoadResult(null, [$"HOCON syntax error: {e.Message}"]);
        }
        var errors = new List<string>();
        var root = config.Root;
        if (root.IsObject())
        {
            foreach (var (key, value) in root.GetObject().Items)
            {
                if (key != "mtasts")
                {
                    errors.Add($"line {LineOf(text, key)}: \"{key}\" does not belong in a destconfig file (only mtasts.destinations and mtasts.bounce-profiles)");
                    continue;
                }
                if (!value.IsObject()) { errors.Add($"line {LineOf(text, "mtasts")}: mtasts must be an object"); continue; }
                foreach (var (inner, _) in value.GetObject().Items)
                    if (inner is not ("destinations" or "bounce-profiles"))
                        errors.Add($"line {LineOf(text, inner)}: \"mtasts.{inner}\" does not belong in a destconfig file (only mtasts.destinations and mtasts.bounce-profiles)");
            }
        }
        if (!config.HasPath(DestinationConfigLoader.DestinationsPath))
            errors.Add($"{DestinationConfigLoader.DestinationsPath} is missing: a destconfig file replaces every destination profile, so it must list them (at least default)");
        if (errors.Count > 0) return new ConfigLoadResult(null, errors);
        var result = DestinationConfigLoader.Load(config);
        return result.IsValid ? result : result with { Errors = result.Errors.Select(e => Locate(text, e)).ToArray() };
    }

    [GeneratedRegex("""^(destination|bounce-profile) "(?<owner>[^"]*)": (unknown setting "(?<key>[^"]+)"|(?<key>[a-z][a-z0-9.-]*))""")]
    private static partial Regex OwnerAndKey();

    /// <summary>Prefixes the loader's error with the line of the setting it names (the profile's line when the setting
    /// is not found, the error unchanged when neither is).</summary>
    public static string Locate(string text, string error)
    {
        var m = OwnerAndKey().Match(error);
        if (!m.Success) return error;
        var lines = text.Split('\n');
        var owner = m.Groups["owner"].Value;
        var start = Array.FindIndex(lines, l => IsHeader(l, owner));
        if (start < 0) return error;
        var key = m.Groups["key"].Value;
        var leaf = key[(key.LastIndexOf('.') + 1)..];
        var depth = 0;
        for (var i = start; i < lines.Length; i++)
        {
            var line = lines[i];
            if (i > start && Regex.IsMatch(line, $@"(^|[\s{{,""])""?{Regex.Escape(leaf)}""?\s*[=:{{]")) return $"line {i + 1}: {error}";
            depth += line.Count(c => c == '{') - line.Count(c => c == '}');
            if (i > start && depth <= 0) break;
        }
        return $"line {start + 1}: {error}";
    }

    private static bool IsHeader(string line, string owner)
    {
        var t = line.TrimStart();
        foreach (var form in new[] { $"\"{owner}\"", owner })
            if (t.StartsWith(form, StringComparison.OrdinalIgnoreCase) && t[form.Length..].TrimStart() is { Length: > 0 } rest && rest[0] is '{' or '=' or ':')
                return true;
        return false;
    }

    private static int LineOf(string text, string token)
    {
        var i = text.IndexOf(token, StringComparison.Ordinal);
        return i < 0 ? 1 : text.AsSpan(0, i).Count('\n') + 1;
    }
}
