using System.Globalization;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace MtaSts.Actors.DestinationControls.Throttling;

/// <summary>What a matching reply does to its destination.</summary>
public enum ThrottleAction
{
    /// <summary>Match and stop looking, without throttling (switches a later or built-in rule off for these replies).</summary>
    None,
    /// <summary>No connection for the duration (the mail stays queued).</summary>
    Suspend,
    /// <summary>Concurrent connections lowered to a value or by a factor for the duration.</summary>
    LimitConnections,
    /// <summary>Messages per minute lowered to a value or by a factor for the duration.</summary>
    LimitRate,
}

/// <summary>
/// One reply-driven throttling rule: a match on the reply code (<c>421</c> or a class <c>4xx</c>), the enhanced status
/// code (RFC 3463, a prefix by component: <c>4.7</c> matches <c>4.7.28</c>, not <c>4.70.1</c>) and/or a
/// case-insensitive regular expression on the reply text — every given part must match — and an action with its
/// duration and ramp step. Built by <see cref="ThrottleRuleParser"/> (the only place a rule is validated).
/// </summary>
public sealed record ThrottleRule
{
    /// <summary>A regular expression runs on text from the network: bounded in time, and on a bounded text.</summary>
    public static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(100);
    public const int MaxTextMatched = 2048;

    public required string Name { get; init; }
    /// <summary>Exact code (421), or a class (4 for <c>4xx</c>) when <see cref="CodeIsClass"/>; null = any code.</summary>
    public int? Code { get; init; }
    public bool CodeIsClass { get; init; }
    /// <summary>Enhanced status code prefix by components (<c>[4, 7, 28]</c>); null = any.</summary>
    public IReadOnlyList<int>? Enhanced { get; init; }
    /// <summary>Case-insensitive regular expression on the reply text (the lines joined by spaces); null = any.</summary>
    [JsonIgnore]
    public Regex? Text { get; init; }
    /// <summary>The pattern of <see cref="Text"/> as configured (what the admin API shows).</summary>
    public string? Pattern => Text?.ToString();
    public ThrottleAction Action { get; init; }
    /// <summary><see cref="ThrottleAction.LimitConnections"/>: the connection limit (1..1000), or null with a factor.</summary>
    public int? Connections { get; init; }
    /// <summary><see cref="ThrottleAction.LimitRate"/>: messages per minute, or null with a factor.</summary>
    public double? Rate { get; init; }
    /// <summary>The limit as a fraction (0, 1] of the current level (connections in use, messages sent in the last minute).</summary>
    public double? Factor { get; init; }
    /// <summary>How long the lowered limit holds (a second firing extends it).</summary>
    public TimeSpan Duration { get; init; }
    /// <summary>After the hold: each step adds one connection / doubles the rate, back to the level before the rule fired.</summary>
    public TimeSpan RampStep { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>Shipped with the gateway (<see cref="BuiltinThrottleRules"/>), not configured.</summary>
    public bool Builtin { get; init; }

    /// <summary>True when the reply (<paramref name="code"/> 400..599; others never match) matches every part of the rule.</summary>
    public bool Matches(int code, string? enhanced, string text)
    {
        if (code is < 400 or > 599) return false;
        if (Code is { } c && (CodeIsClass ? code / 100 != c : code != c)) return false;
        if (Enhanced is { } prefix && !EnhancedStartsWith(enhanced, prefix)) return false;
        if (Text is { } re)
        {
            try
            {
                if (!re.IsMatch(text.Length > MaxTextMatched ? text[..MaxTextMatched] : text)) return false;
            }
            catch (RegexMatchTimeoutException)
            {
                return false; // a pathological text does not throttle (nor stall the destination)
            }
        }
        return true;
    }

    private static bool EnhancedStartsWith(string? enhanced, IReadOnlyList<int> prefix)
    {
        if (enhanced is null) return false;
        var parts = enhanced.Split('.');
        if (parts.Length < prefix.Count) return false;
        for (var i = 0; i < prefix.Count; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n != prefix[i]) return false;
        return true;
    }

    /// <summary>What the rule does, for logs and the status: <c>limit-connections 2 for 5m</c>.</summary>
    public string Describe() => Action switch
    {
        ThrottleAction.None => "none",
        ThrottleAction.Suspend => $"suspend for {ThrottleText.Duration(Duration)}",
        ThrottleAction.LimitConnections => $"limit-connections {(Connections is { } n ? n.ToString(CultureInfo.InvariantCulture) : "x" + ThrottleText.Number(Factor!.Value))} for {ThrottleText.Duration(Duration)}",
        _ => $"limit-rate {(Rate is { } r ? ThrottleText.Number(r) + "/min" : "x" + ThrottleText.Number(Factor!.Value))} for {ThrottleText.Duration(Duration)}",
    };

    public bool Equals(ThrottleRule? other) =>
        other is not null && Name == other.Name && Code == other.Code && CodeIsClass == other.CodeIsClass &&
        (Enhanced ?? []).SequenceEqual(other.Enhanced ?? []) && Text?.ToString() == other.Text?.ToString() && Action == other.Action &&
        Connections == other.Connections && Rate == other.Rate && Factor == other.Factor && Duration == other.Duration &&
        RampStep == other.RampStep && Builtin == other.Builtin;

    public override int GetHashCode() => HashCode.Combine(Name, Code, Action, Duration);
}

/// <summary>Formatting shared by the rules, the state and the logs.</summary>
public static class ThrottleText
{
    public static string Number(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    public static string Duration(TimeSpan t)
    {
        if (t.Ticks % TimeSpan.TicksPerHour == 0) return $"{t.Ticks / TimeSpan.TicksPerHour}h";
        if (t.Ticks % TimeSpan.TicksPerMinute == 0) return $"{t.Ticks / TimeSpan.TicksPerMinute}m";
        if (t.Ticks % TimeSpan.TicksPerSecond == 0) return $"{t.Ticks / TimeSpan.TicksPerSecond}s";
        return $"{t.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)}ms";
    }
}
