using System.Runtime.CompilerServices;
using MtaSts.Actors.Configuration;

namespace MtaSts.Actors.DestinationControls.Throttling;

/// <summary><c>mtasts.throttle { builtin = on, rules = [ ... ] }</c>: the global throttling rules (hocon/gateway.conf).</summary>
public sealed record ThrottleOptions
{
    public const string RulesKey = "rules", BuiltinKey = "builtin";

    /// <summary>Use <see cref="BuiltinThrottleRules"/> (after the configured rules; one of the same name is replaced).</summary>
    public bool Builtin { get; init; } = true;
    public IReadOnlyList<ThrottleRule> Rules { get; init; } = [];

    private readonly ConditionalWeakTable<DestinationProfile, ThrottleRuleSet> _perProfile = new();

    public static ThrottleOptions Read(ConfigSection section)
    {
        var d = new ThrottleOptions();
        section.RefuseUnknownKeys(BuiltinKey, RulesKey);
        var builtin = section.Get(BuiltinKey, d.Builtin, s => s.Trim().ToLowerInvariant() switch
        {
            "on" or "true" or "yes" => true,
            "off" or "false" or "no" => false,
            _ => throw new FormatException("expected on or off"),
        });
        var rules = section.Objects(RulesKey) is { } items
            ? ThrottleRuleParser.ParseList(section.FullKey(RulesKey), items, section.Error)
            : d.Rules;
        return new ThrottleOptions { Builtin = builtin, Rules = rules };
    }

    /// <summary>The rules for a destination, in the order they are tried: the profile's <c>throttle-rules</c>, then the
    /// global rules, then the built-ins (a rule named like an earlier one is left out). Computed once per profile.</summary>
    public ThrottleRuleSet For(DestinationProfile profile) => _perProfile.GetValue(profile, p =>
    {
        var rules = new List<ThrottleRule>();
        foreach (var r in p.ThrottleRules.Concat(Rules).Concat(Builtin ? BuiltinThrottleRules.All : []))
            if (!rules.Any(x => x.Name == r.Name)) rules.Add(r);
        return new ThrottleRuleSet(rules);
    });

    public bool Equals(ThrottleOptions? other) => other is not null && Builtin == other.Builtin && Rules.SequenceEqual(other.Rules);

    public override int GetHashCode() => HashCode.Combine(Builtin, Rules.Count);
}

/// <summary>The ordered rules of one destination: the first that matches a reply decides.</summary>
public sealed record ThrottleRuleSet(IReadOnlyList<ThrottleRule> Rules)
{
    public static ThrottleRuleSet Empty { get; } = new([]);

    /// <summary>The first rule matching the reply (<paramref name="code"/> 0 or 2yz/3yz never match), or null.</summary>
    public ThrottleRule? Match(int code, string? enhanced, string text)
    {
        foreach (var r in Rules)
            if (r.Matches(code, enhanced, text)) return r;
        return null;
    }
}
