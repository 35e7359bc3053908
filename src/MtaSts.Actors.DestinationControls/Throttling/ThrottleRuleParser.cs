using System.Globalization;
using System.Text.RegularExpressions;
using MtaSts.Actors.Configuration;

namespace MtaSts.Actors.DestinationControls.Throttling;

/// <summary>
/// Reads throttling rules, global (<c>mtasts.throttle.rules</c>) and per profile (<c>throttle-rules</c>): a list of flat
/// objects <c>{ name = gmail-rate, code = 421, enhanced = "4.7.28", text = "rate", action = limit-connections,
/// connections = 2, duration = 5m, ramp-step = 1m }</c>. A bad rule is refused with a message naming its key
/// (<c>mtasts.throttle.rules[2].factor = 1.5: ...</c>), never dropped silently.
/// </summary>
public static class ThrottleRuleParser
{
    public static class Keys
    {
        public const string Name = "name", Code = "code", Enhanced = "enhanced", Text = "text", Action = "action";
        public const string Connections = "connections", Rate = "rate", Factor = "factor", Duration = "duration", RampStep = "ramp-step";
        public static readonly IReadOnlyList<string> All = [Name, Code, Enhanced, Text, Action, Connections, Rate, Factor, Duration, RampStep];
    }

    public static readonly TimeSpan MaxDuration = TimeSpan.FromDays(1);
    public const double MaxRate = 1_000_000;
    private static readonly (string Text, ThrottleAction Value)[] Actions =
    [
        ("none", ThrottleAction.None), ("suspend", ThrottleAction.Suspend),
        ("limit-connections", ThrottleAction.LimitConnections), ("limit-rate", ThrottleAction.LimitRate),
    ];

    /// <summary>Every rule of a list; a bad one is left out and its errors recorded (the load then fails). Names must
    /// be unique within the list.</summary>
    /// <param name="path">The list's full key, e.g. <c>mtasts.throttle.rules</c>; items are named <c>path[i]</c>.</param>
    public static IReadOnlyList<ThrottleRule> ParseList(string path, IReadOnlyList<IReadOnlyList<KeyValuePair<string, string?>>?> items,
        Action<string> error)
    {
        var rules = new List<ThrottleRule>();
        for (var i = 0; i < items.Count; i++)
        {
            var at = $"{path}[{i}]";
            if (Parse(at, items[i], error) is not { } rule) continue;
            if (rules.Any(r => r.Name == rule.Name)) error($"{at}.{Keys.Name} = {rule.Name}: another rule of {path} has this name");
            else rules.Add(rule);
        }
        return rules;
    }

    /// <summary>One rule, or null (with errors recorded) when it is not valid.</summary>
    public static ThrottleRule? Parse(string at, IReadOnlyList<KeyValuePair<string, string?>>? entries, Action<string> error)
    {
        if (entries is null)
        {
            error($"{at} must be an object {{ name = ..., code = 421, action = limit-connections, connections = 2, duration = 5m }}");
            return null;
        }
        var ok = true;
        void Bad(string key, string? raw, string why)
        {
            error(raw is null ? $"{at}.{key}: {why}" : $"{at}.{key} = {raw}: {why}");
            ok = false;
        }
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, raw) in entries)
        {
            if (!Keys.All.Contains(key)) Bad(key, null, $"unknown setting (known: {string.Join(", ", Keys.All)})");
            else if (raw is null) Bad(key, null, "must be a single value");
            else values[key] = raw.Trim();
        }
        string? Get(string key) => values.GetValueOrDefault(key);

        var name = Get(Keys.Name);
        if (name is null) Bad(Keys.Name, null, "missing (each rule needs a name: it is logged when the rule fires)");
        else if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            Bad(Keys.Name, name, "letters, digits, '-', '_' and '.' only");

        int? code = null;
        var codeIsClass = false;
        if (Get(Keys.Code) is { } codeText)
        {
            if (codeText.Length == 3 && codeText[0] is '4' or '5' && codeText[1..].Equals("xx", StringComparison.OrdinalIgnoreCase))
                (code, codeIsClass) = (codeText[0] - '0', true);
            else if (int.TryParse(codeText, NumberStyles.None, CultureInfo.InvariantCulture, out var c) && c is >= 400 and <= 599 && c / 10 % 10 <= 5)
                code = c;
            else Bad(Keys.Code, codeText, "not a failure reply code (400..599, RFC 5321 §4.2) or class (4xx, 5xx)");
        }

        int[]? enhanced = null;
        if (Get(Keys.Enhanced) is { } enhText)
        {
            var parts = enhText.Split('.');
            if (parts.Length is < 1 or > 3 || parts.Any(p => p.Length is 0 or > 3 || !p.All(char.IsAsciiDigit)) || parts[0] is not ("4" or "5"))
                Bad(Keys.Enhanced, enhText, "not an enhanced status code or a prefix of one (4.7.28, 4.7, 5; RFC 3463 §2)");
            else enhanced = parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
        }

        Regex? text = null;
        if (Get(Keys.Text) is { } pattern)
        {
            if (pattern.Length == 0) Bad(Keys.Text, "\"\"", "empty pattern (leave the key out to match any text)");
            else
            {
                try
                {
                    text = new Regex(pattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, ThrottleRule.RegexTimeout);
                }
                catch (ArgumentException e)
                {
                    Bad(Keys.Text, $"\"{pattern}\"", $"not a valid regular expression ({e.Message})");
                }
            }
        }
        if (!values.ContainsKey(Keys.Code) && !values.ContainsKey(Keys.Enhanced) && !values.ContainsKey(Keys.Text))
            Bad(Keys.Code, null, $"a rule needs at least one of {Keys.Code}, {Keys.Enhanced}, {Keys.Text}");

        ThrottleAction? action = null;
        if (Get(Keys.Action) is not { } actionText) Bad(Keys.Action, null, $"missing (one of {string.Join(", ", Actions.Select(a => a.Text))})");
        else if (Actions.FirstOrDefault(a => a.Text.Equals(actionText, StringComparison.OrdinalIgnoreCase)) is { Text: not null } found)
            action = found.Value;
        else Bad(Keys.Action, actionText, $"unknown action (one of {string.Join(", ", Actions.Select(a => a.Text))})");

        int? connections = null;
        if (Get(Keys.Connections) is { } connText)
        {
            if (action != ThrottleAction.LimitConnections) Bad(Keys.Connections, connText, "only for action = limit-connections");
            else if (!int.TryParse(connText, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                     || n is < DestinationProfile.MinConcurrentConnections or > DestinationProfile.MaxConcurrentConnectionsLimit)
                Bad(Keys.Connections, connText, $"out of range {DestinationProfile.MinConcurrentConnections}..{DestinationProfile.MaxConcurrentConnectionsLimit}");
            else connections = n;
        }
        double? rate = null;
        if (Get(Keys.Rate) is { } rateText)
        {
            if (action != ThrottleAction.LimitRate) Bad(Keys.Rate, rateText, "only for action = limit-rate");
            else if (!double.TryParse(rateText, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var r) || r <= 0 || r > MaxRate)
                Bad(Keys.Rate, rateText, $"messages per minute, more than 0 and at most {MaxRate:0}");
            else rate = r;
        }
        double? factor = null;
        if (Get(Keys.Factor) is { } factorText)
        {
            if (action is not (ThrottleAction.LimitConnections or ThrottleAction.LimitRate))
                Bad(Keys.Factor, factorText, "only for action = limit-connections or limit-rate");
            else if (!double.TryParse(factorText, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var f) || f <= 0 || f > 1)
                Bad(Keys.Factor, factorText, "outside (0, 1]: the limit becomes this fraction of the current level");
            else factor = f;
        }
        if (action == ThrottleAction.LimitConnections && values.ContainsKey(Keys.Connections) == values.ContainsKey(Keys.Factor))
            Bad(Keys.Connections, null, $"limit-connections needs exactly one of {Keys.Connections} or {Keys.Factor}");
        if (action == ThrottleAction.LimitRate && values.ContainsKey(Keys.Rate) == values.ContainsKey(Keys.Factor))
            Bad(Keys.Rate, null, $"limit-rate needs exactly one of {Keys.Rate} or {Keys.Factor}");

        TimeSpan Duration(string key, TimeSpan fallback)
        {
            if (Get(key) is not { } raw) return fallback;
            if (action == ThrottleAction.None) { Bad(key, raw, "not for action = none"); return fallback; }
            if (!ConfigSection.TryParseDuration(raw, out var d)) { Bad(key, raw, "not a duration (a number with a unit ms, s, m, h, e.g. 5m)"); return fallback; }
            if (d <= TimeSpan.Zero || d > MaxDuration) { Bad(key, raw, $"out of range (more than 0, at most {ThrottleText.Duration(MaxDuration)})"); return fallback; }
            return d;
        }
        var duration = Duration(Keys.Duration, TimeSpan.Zero);
        var rampStep = Duration(Keys.RampStep, TimeSpan.FromMinutes(1));
        if (action is not (null or ThrottleAction.None) && !values.ContainsKey(Keys.Duration))
            Bad(Keys.Duration, null, "missing (how long the action holds, e.g. 5m)");

        if (!ok) return null;
        return new ThrottleRule
        {
            Name = name!, Code = code, CodeIsClass = codeIsClass, Enhanced = enhanced, Text = text, Action = action!.Value,
            Connections = connections, Rate = rate, Factor = factor, Duration = duration, RampStep = rampStep,
        };
    }
}
