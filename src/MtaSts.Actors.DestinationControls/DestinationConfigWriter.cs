using System.Globalization;
using System.Text;

namespace MtaSts.Actors.DestinationControls;

/// <summary>
/// Writes a <see cref="DestinationConfig"/> back as HOCON in the <c>hocon/destinations.conf</c> format (vendor
/// <c>destconfig export</c>): every profile with every setting spelled out (nothing inherited), so that
/// <see cref="DestinationConfigLoader.Parse"/> of the text gives the same effective profiles.
/// </summary>
public static class DestinationConfigWriter
{
    public static string Write(DestinationConfig config, string? header = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var sb = new StringBuilder();
        if (header is not null)
            foreach (var line in header.Split('\n')) sb.Append("# ").Append(line.TrimEnd('\r')).Append('\n');
        sb.Append("mtasts {\n  destinations {\n");
        foreach (var p in new[] { config.Profiles.Default }.Concat(config.Profiles.Profiles.Where(p => !p.IsDefault)
                     .OrderBy(p => p.Destination, StringComparer.Ordinal)))
            WriteDestination(sb, p);
        sb.Append("  }\n  bounce-profiles {\n");
        foreach (var b in config.BounceProfiles.Values.OrderBy(b => b.Name == BounceProfile.DefaultName ? 0 : 1).ThenBy(b => b.Name, StringComparer.Ordinal))
            WriteBounce(sb, b);
        sb.Append("  }\n}\n");
        return sb.ToString();
    }

    /// <summary>One line per profile for <c>mtasts config</c>: the settings an operator checks first, with the file's
    /// key names where they are words (bounce-verification is BATV, tagged return paths and verified bounces).</summary>
    public static string Summary(DestinationProfile p) =>
        $"{p.Destination,-28} conn {p.MaxConcurrentConnections,4}  msgs/conn {p.MaxMessagesPerConnection,4}  tls {p.TlsSupport,-27} " +
        $"dane {p.DaneSupport,-13} mta-sts {(p.MtaSts ? "yes" : "no")}  {DestinationConfigLoader.Keys.BounceVerification} {OnOff(p.BounceVerification),-3}  " +
        $"bounce {p.BounceProfile}";

    private static void WriteDestination(StringBuilder sb, DestinationProfile p)
    {
        sb.Append("    ").Append(Quote(p.Destination)).Append(" {\n");
        void Set(string key, string value) => sb.Append("      ").Append(key).Append(" = ").Append(value).Append('\n');
        Set(DestinationConfigLoader.Keys.IpPreference, p.IpPreference switch
        {
            IpPreference.PreferV4 => "prefer-v4",
            IpPreference.PreferV6 => "prefer-v6",
            IpPreference.RequireV4 => "require-v4",
            _ => "require-v6",
        });
        Set(DestinationConfigLoader.Keys.MaxConcurrentConnections, Num(p.MaxConcurrentConnections));
        Set(DestinationConfigLoader.Keys.MaxMessagesPerConnection, Num(p.MaxMessagesPerConnection));
        Set(DestinationConfigLoader.Keys.MaxRecipientsPerTransaction, Num(p.MaxRecipientsPerTransaction));
        if (p.RecipientLimit is { } limit)
            sb.Append("      ").Append(DestinationConfigLoader.Keys.RecipientLimit).Append(" { ")
                .Append(DestinationConfigLoader.Keys.RecipientLimitRecipients).Append(" = ").Append(Num(limit.Recipients)).Append(", ")
                .Append(DestinationConfigLoader.Keys.RecipientLimitMinutes).Append(" = ").Append(Num(limit.Minutes)).Append(" }\n");
        else Set(DestinationConfigLoader.Keys.RecipientLimit, "unlimited");
        Set(DestinationConfigLoader.Keys.LimitScope, p.LimitScope switch
        {
            LimitScope.SystemWide => "system-wide",
            LimitScope.PerGatewayHostname => "per-gateway-hostname",
            _ => "per-virtual-gateway",
        });
        Set(DestinationConfigLoader.Keys.LimitType, p.LimitType == LimitType.WholeDomain ? "domain" : "mx-ip");
        Set(DestinationConfigLoader.Keys.TlsSupport, p.TlsSupport switch
        {
            TlsSupport.None => "none",
            TlsSupport.Preferred => "preferred",
            TlsSupport.Required => "required",
            TlsSupport.PreferredVerify => "preferred-verify",
            TlsSupport.RequiredVerify => "required-verify",
            _ => "required-verify-hosted-domains",
        });
        Set(DestinationConfigLoader.Keys.ClientCertificate, Quote(p.ClientCertificate ?? ""));
        Set(DestinationConfigLoader.Keys.DaneSupport, p.DaneSupport switch
        {
            DaneSupport.None => "none",
            DaneSupport.Opportunistic => "opportunistic",
            _ => "mandatory",
        });
        Set(DestinationConfigLoader.Keys.MtaSts, OnOff(p.MtaSts));
        Set(DestinationConfigLoader.Keys.BounceVerification, OnOff(p.BounceVerification));
        Set(DestinationConfigLoader.Keys.BounceProfile, Quote(p.BounceProfile));
        Set(DestinationConfigLoader.Keys.SourceAddress, Quote(p.SourceAddress ?? ""));
        Set(DestinationConfigLoader.Keys.SmtpRoute, "[" + string.Join(", ", p.SmtpRoute.Select(h => Quote(h.ToString()))) + "]");
        sb.Append("      ").Append(DestinationConfigLoader.Keys.ThrottleRules).Append(" = [");
        foreach (var r in p.ThrottleRules) sb.Append("\n        ").Append(ThrottleRule(r));
        sb.Append(p.ThrottleRules.Count > 0 ? "\n      ]\n" : "]\n");
        sb.Append("    }\n");
    }

    private static void WriteBounce(StringBuilder sb, BounceProfile b)
    {
        sb.Append("    ").Append(Quote(b.Name)).Append(" {\n");
        void Set(string key, string value) => sb.Append("      ").Append(key).Append(" = ").Append(value).Append('\n');
        Set(DestinationConfigLoader.Keys.MaxRetries, Num(b.MaxRetries));
        Set(DestinationConfigLoader.Keys.MaxTimeInQueue, DestinationConfigLoader.FormatDuration(b.MaxTimeInQueue));
        Set(DestinationConfigLoader.Keys.InitialRetryInterval, DestinationConfigLoader.FormatDuration(b.InitialRetryInterval));
        Set(DestinationConfigLoader.Keys.MaxRetryInterval, DestinationConfigLoader.FormatDuration(b.MaxRetryInterval));
        Set(DestinationConfigLoader.Keys.RetryJitter, b.RetryJitter.ToString("R", CultureInfo.InvariantCulture));
        Set(DestinationConfigLoader.Keys.SendDsn, OnOff(b.SendDsn));
        if (b.DelayWarning is { } dw)
            sb.Append("      ").Append(DestinationConfigLoader.Keys.DelayWarning).Append(" { ")
                .Append(DestinationConfigLoader.Keys.DelayWarningInterval).Append(" = ").Append(DestinationConfigLoader.FormatDuration(dw.Interval)).Append(", ")
                .Append(DestinationConfigLoader.Keys.DelayWarningMaxCount).Append(" = ").Append(Num(dw.MaxCount)).Append(" }\n");
        else Set(DestinationConfigLoader.Keys.DelayWarning, "off");
        sb.Append("    }\n");
    }

    private static string ThrottleRule(Throttling.ThrottleRule r)
    {
        var keys = new List<string> { $"name = {Quote(r.Name)}" };
        if (r.Code is { } code) keys.Add($"code = {Quote(r.CodeIsClass ? $"{code}xx" : Num(code))}");
        if (r.Enhanced is { } enhanced) keys.Add($"enhanced = {Quote(string.Join('.', enhanced))}");
        if (r.Text is { } text) keys.Add($"text = {Quote(text.ToString())}");
        keys.Add($"action = {r.Action switch
        {
            Throttling.ThrottleAction.None => "none",
            Throttling.ThrottleAction.Suspend => "suspend",
            Throttling.ThrottleAction.LimitConnections => "limit-connections",
            _ => "limit-rate",
        }}");
        if (r.Connections is { } c) keys.Add($"connections = {Num(c)}");
        if (r.Rate is { } rate) keys.Add($"rate = {rate.ToString("R", CultureInfo.InvariantCulture)}");
        if (r.Factor is { } f) keys.Add($"factor = {f.ToString("R", CultureInfo.InvariantCulture)}");
        if (r.Action != Throttling.ThrottleAction.None)
        {
            keys.Add($"duration = {DestinationConfigLoader.FormatDuration(r.Duration)}");
            keys.Add($"ramp-step = {DestinationConfigLoader.FormatDuration(r.RampStep)}");
        }
        return "{ " + string.Join(", ", keys) + " }";
    }

    private static string Num(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string OnOff(bool b) => b ? "on" : "off";

    /// <summary>A HOCON quoted string (JSON escaping).</summary>
    private static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
