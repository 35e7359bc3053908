using MtaSts.Actors.Dns;

namespace MtaSts.Actors.DestinationControls;

/// <summary>
/// The configured destination profiles and their lookup. Immutable; a reload builds a new set.
/// </summary>
/// <remarks>
/// Vendor rule (AsyncOS Destination Controls): an entry <c>example.com</c> applies to that domain only; an entry
/// <c>.example.com</c> applies to every subdomain (<c>a.example.com</c>, <c>b.a.example.com</c>) but <b>not</b> to
/// <c>example.com</c> itself — to cover both, configure both. The most specific entry wins: the exact domain, then the
/// longest matching <c>.suffix</c>, then <c>default</c>. Names compare case-insensitively (RFC 4343) and a trailing
/// dot is ignored.
/// </remarks>
public sealed class ProfileSet
{
    private readonly Dictionary<string, DestinationProfile> _exact;
    private readonly Dictionary<string, DestinationProfile> _suffix; // keyed WITH the leading dot: ".example.com"
    private readonly Dictionary<string, DestinationProfile>.AlternateLookup<ReadOnlySpan<char>> _exactSpan;
    private readonly Dictionary<string, DestinationProfile>.AlternateLookup<ReadOnlySpan<char>> _suffixSpan;

    public static ProfileSet Empty { get; } = new([]);

    /// <summary>The fallback profile (<c>default</c>), vendor defaults unless configured.</summary>
    public DestinationProfile Default { get; }

    /// <summary>Every profile, default first, then in name order.</summary>
    public IReadOnlyList<DestinationProfile> Profiles { get; }

    /// <exception cref="ArgumentException">Two profiles normalise to the same destination, or a name is invalid.</exception>
    public ProfileSet(IEnumerable<DestinationProfile> profiles)
    {
        _exact = new(StringComparer.OrdinalIgnoreCase);
        _suffix = new(StringComparer.OrdinalIgnoreCase);
        DestinationProfile? def = null;
        foreach (var p in profiles)
        {
            var name = DomainNames.Normalize(p.Destination);
            var profile = name == p.Destination ? p : p with { Destination = name };
            if (name == DestinationProfile.DefaultName)
            {
                if (def is not null) throw new ArgumentException("duplicate default profile");
                def = profile;
                continue;
            }
            var isSuffix = name.StartsWith('.');
            if (!DomainNames.IsValidHostName(isSuffix ? name.AsSpan(1) : name))
                throw new ArgumentException($"destination \"{p.Destination}\" is not a domain, a .domain or default");
            var map = isSuffix ? _suffix : _exact;
            if (!map.TryAdd(name, profile)) throw new ArgumentException($"duplicate destination \"{name}\"");
        }
        Default = def ?? DestinationProfile.Default;
        _exactSpan = _exact.GetAlternateLookup<ReadOnlySpan<char>>();
        _suffixSpan = _suffix.GetAlternateLookup<ReadOnlySpan<char>>();
        Profiles = [Default, .. _exact.Values.Concat(_suffix.Values).OrderBy(p => p.Destination, StringComparer.Ordinal)];
    }

    /// <summary>The profile for a recipient domain. Allocation-free: O(labels) hash lookups on spans.</summary>
    public DestinationProfile Resolve(ReadOnlySpan<char> domain)
    {
        domain = domain.Trim();
        if (domain.Length > 0 && domain[^1] == '.') domain = domain[..^1];
        if (domain.IsEmpty) return Default;
        if (_exact.Count > 0 && _exactSpan.TryGetValue(domain, out var exact)) return exact;
        if (_suffix.Count == 0) return Default;
        // Candidate suffixes from the longest: for b.a.example.com try ".a.example.com", ".example.com", ".com".
        // The domain itself is never a candidate (".example.com" does not match example.com).
        for (var dot = domain.IndexOf('.'); dot >= 0; )
        {
            if (_suffixSpan.TryGetValue(domain[dot..], out var match)) return match;
            var next = domain[(dot + 1)..].IndexOf('.');
            dot = next < 0 ? -1 : dot + 1 + next;
        }
        return Default;
    }

    public DestinationProfile Resolve(string domain) => Resolve(domain.AsSpan());

    /// <summary>The profile for a destination (already normalised).</summary>
    public DestinationProfile Resolve(DestinationDomain domain) => Resolve(domain.Name.AsSpan());

    /// <summary>The profile configured under exactly this name (<c>example.com</c>, <c>.example.com</c>, <c>default</c>).</summary>
    public DestinationProfile? Find(string destination)
    {
        var name = DomainNames.Normalize(destination);
        if (name == DestinationProfile.DefaultName) return Default;
        return (name.StartsWith('.') ? _suffix : _exact).GetValueOrDefault(name);
    }
}
