using MtaSts.Actors.Dns;
namespace MtaSts.Actors.DestinationControls;

/// <summary>A validated destination configuration: the profiles and the bounce profiles they name.</summary>
public sealed class DestinationConfig
{
    /// <summary>Vendor factory defaults: only the default profile and the default bounce profile.</summary>
    public static DestinationConfig Default { get; } = new(ProfileSet.Empty, [BounceProfile.Default]);

    public ProfileSet Profiles { get; }

    /// <summary>Bounce profiles by name (ordinal, case-sensitive like any HOCON key). Always holds <c>default</c>.</summary>
    public IReadOnlyDictionary<string, BounceProfile> BounceProfiles { get; }

    public DestinationConfig(ProfileSet profiles, IEnumerable<BounceProfile> bounceProfiles)
    {
        Profiles = profiles;
        var map = new Dictionary<string, BounceProfile>(StringComparer.Ordinal);
        foreach (var b in bounceProfiles) map[b.Name] = b;
        map.TryAdd(BounceProfile.DefaultName, BounceProfile.Default);
        BounceProfiles = map;
    }

    /// <summary>The bounce profile a destination profile names; the default bounce profile if the name is unknown
    /// (cannot happen for a config that came out of <see cref="DestinationConfigLoader"/>).</summary>
    public BounceProfile BounceProfileFor(DestinationProfile profile) =>
        BounceProfiles.GetValueOrDefault(profile.BounceProfile) ?? BounceProfiles[BounceProfile.DefaultName];

    /// <summary>Profile and bounce profile for a recipient domain (most specific profile wins).</summary>
    public (DestinationProfile Profile, BounceProfile Bounce) Resolve(string domain) => Resolve(DestinationDomain.Parse(domain));

    /// <inheritdoc cref="Resolve(string)"/>
    public (DestinationProfile Profile, BounceProfile Bounce) Resolve(DestinationDomain domain)
    {
        var p = Profiles.Resolve(domain);
        return (p, BounceProfileFor(p));
    }
}

/// <summary>Outcome of loading a configuration: either a config, or every error found (never both).
/// On a reload with errors, keep running with the previous good config.</summary>
public sealed record ConfigLoadResult(DestinationConfig? Config, IReadOnlyList<string> Errors)
{
    public bool IsValid => Config is not null && Errors.Count == 0;
}
