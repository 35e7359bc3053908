using System.Globalization;
using MtaSts.Actors.Dns;

namespace MtaSts.Actors.Policy.Parsing;

/// <summary>RFC 8461 §4.1 MX host matching.</summary>
public static class MxMatcher
{
    private static readonly IdnMapping Idn = new();

    /// <summary>§4.1: a literal pattern matches the host name exactly; "*.rest" matches exactly one extra
    /// left-most label in front of "rest" (so not "rest" itself and not "a.b.rest"). Case-insensitive, a
    /// trailing root dot on either side is ignored, a ":port" suffix on the host is not part of the name,
    /// and non-ASCII (U-label) input is compared in its A-label form.</summary>
    public static bool Matches(MxPattern pattern, string mxHost)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(mxHost);

        var host = Normalize(StripPort(mxHost.Trim()));
        var pat = pattern.Pattern.Trim();
        if (host.Length == 0 || pat.Length == 0)
            return false;

        if (pat.StartsWith("*.", StringComparison.Ordinal))
        {
            var rest = Normalize(pat[2..]);
            var dot = host.IndexOf('.');
            // Exactly one label: the host's first label is non-empty and everything after it equals rest.
            return rest.Length > 0 && dot > 0 && host[(dot + 1)..] == rest;
        }
        return host == Normalize(pat);
    }

    public static bool MatchesAny(StsPolicy policy, string mxHost) => policy.Mx.Any(p => Matches(p, mxHost));

    /// <summary>The MX hosts a policy allows, in the given (preference) order (§4.1, §5).</summary>
    public static IReadOnlyList<string> Eligible(StsPolicy policy, IEnumerable<string> mxHosts) =>
        mxHosts.Where(h => MatchesAny(policy, h)).ToList();

    // "mx01.example.:587" -> "mx01.example."; a name has no ':', so only a single trailing ":digits" is a port.
    private static string StripPort(string host)
    {
        var colon = host.LastIndexOf(':');
        if (colon <= 0 || host.IndexOf(':') != colon || colon == host.Length - 1)
            return host;
        return host[(colon + 1)..].All(Abnf.IsDigit) ? host[..colon] : host;
    }

    private static string Normalize(string name)
    {
        // MX names from DNS are A-labels; a U-label (config, hand-written pattern) is compared as one.
        if (DestinationDomain.TryParse(name, out var domain, out _)) return domain.Name;
        if (name.EndsWith('.'))
            name = name[..^1];
        name = name.ToLowerInvariant();
        if (name.All(c => c < '\x80'))
            return name;
        try
        {
            // MX names from DNS are A-labels; a U-label (config, hand-written pattern) is compared as one.
            return Idn.GetAscii(name);
        }
        catch (ArgumentException)
        {
            return name;
        }
    }
}
