using System.Globalization;
using System.Net;

namespace MtaSts.Actors.DestinationControls;

/// <summary>Where the limits are counted (vendor <c>limit_apply</c>, plus a per-gateway-hostname scope for clusters).</summary>
public enum LimitScope
{
    /// <summary>One budget for the whole gateway (vendor default "system wide").</summary>
    SystemWide,
    /// <summary>One budget per gateway host name (per node of a cluster).</summary>
    PerGatewayHostname,
    /// <summary>One budget per virtual gateway (source IP); vendor advice: 100 wanted over 4 VGs → set 25.</summary>
    PerVirtualGateway,
}

/// <summary>What one limit covers (vendor <c>limit_type</c>): the whole domain or each MX IP address.</summary>
public enum LimitType { WholeDomain, PerMxIp }

/// <summary>At most <paramref name="Recipients"/> recipients per <paramref name="Minutes"/> minutes
/// (vendor <c>recipient_limit</c> / <c>recipient_minutes</c>). A recipient budget, not a message budget.</summary>
public sealed record RecipientLimit(long Recipients, int Minutes)
{
    public const long MinRecipients = 0, MaxRecipients = 1_000_000_000;
    public const int MinMinutes = 1, MaxMinutes = 60;

    public TimeSpan Window => TimeSpan.FromMinutes(Minutes);

    public override string ToString() => $"{Recipients} per {Minutes} min";
}

/// <summary>A static next hop of an SMTP route: a host name or IP literal, and a port.</summary>
public sealed record SmtpRouteHost(string Host, int Port = 25)
{
    /// <summary>Parses <c>host</c>, <c>host:port</c>, <c>[1.2.3.4]</c>, <c>[1.2.3.4]:2525</c>, <c>[::1]:2525</c>
    /// (RFC 5321 §4.1.3 address literals in brackets; an IPv6 address needs brackets to carry a port).</summary>
    public static bool TryParse(string? text, out SmtpRouteHost route, out string error)
    {
        route = null!;
        error = "";
        var s = text?.Trim() ?? "";
        if (s.Length == 0) { error = "empty host"; return false; }
        string host;
        var port = 25;
        string? portText = null;
        if (s[0] == '[')
        {
            var close = s.IndexOf(']');
            if (close < 0) { error = "missing ']'"; return false; }
            var literal = s[1..close];
            if (literal.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase)) literal = literal[5..];
            if (!IPAddress.TryParse(literal, out var ip)) { error = $"'{literal}' is not an IP address"; return false; }
            host = ip.ToString();
            var rest = s[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':') { error = "unexpected text after ']'"; return false; }
                portText = rest[1..];
            }
        }
        else
        {
            var colon = s.IndexOf(':');
            if (colon >= 0 && s.IndexOf(':', colon + 1) >= 0) { error = "an IPv6 address must be written in brackets, e.g. [::1]:25"; return false; }
            host = colon >= 0 ? s[..colon] : s;
            if (colon >= 0) portText = s[(colon + 1)..];
            if (IPAddress.TryParse(host, out var ip4)) host = ip4.ToString();
            else if (!DomainNames.IsValidHostName(host)) { error = $"'{host}' is not a valid host name"; return false; }
            host = host.TrimEnd('.').ToLowerInvariant();
        }
        if (portText is not null &&
            (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
        {
            error = $"port '{portText}' is out of range 1..65535";
            return false;
        }
        route = new SmtpRouteHost(host, port);
        return true;
    }

    public override string ToString() =>
        (IPAddress.TryParse(Host, out var ip) ? $"[{ip}]" : Host) + (Port == 25 ? "" : ":" + Port.ToString(CultureInfo.InvariantCulture));
}
