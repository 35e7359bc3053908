using MtaSts.Actors.Dns;

namespace MtaSts.Actors.DestinationControls;

/// <summary>Domain name helpers shared by profile lookup and config validation.</summary>
public static class DomainNames
{
    /// <summary>A profile name: lower-case, trailing dot removed. Profile names are A-labels only (a U-label is refused
    /// at load with a hint), so every accepted name is already in <see cref="DestinationDomain"/> form and the lookup
    /// by <see cref="ProfileSet.Resolve(DestinationDomain)"/> compares like with like.</summary>
    public static string Normalize(string name) => name.Trim().TrimEnd('.').ToLowerInvariant();

    /// <summary>RFC 1035 §2.3.1 / RFC 1123 §2.1 host name: labels of 1..63 letters, digits and hyphens, not starting
    /// or ending with a hyphen, 253 characters at most. Underscores are tolerated (seen in the wild on MX targets).
    /// A trailing dot is allowed.</summary>
    public static bool IsValidHostName(ReadOnlySpan<char> name)
    {
        if (name.Length > 0 && name[^1] == '.') name = name[..^1];
        if (name.Length is 0 or > 253) return false;
        var labelLength = 0;
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (c == '.')
            {
                if (labelLength == 0 || name[i - 1] == '-') return false;
                labelLength = 0;
                continue;
            }
            var ok = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' || (c == '-' && labelLength > 0);
            if (!ok || ++labelLength > 63) return false;
        }
        return labelLength > 0 && name[^1] != '-';
    }
}
