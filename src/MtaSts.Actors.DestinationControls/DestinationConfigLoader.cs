using System.Globalization;
using System.Net;
using Akka.Configuration;
using Akka.Configuration.Hocon;
using MtaSts.Actors.Configuration;

namespace MtaSts.Actors.DestinationControls;

/// <summary>
/// Reads <c>mtasts.destinations</c> and <c>mtasts.bounce-profiles</c> from HOCON (see <c>hocon/destinations.conf</c>).
/// Every error is collected (not only the first) and returned, never thrown, so that a reload can report them all
/// and keep the previous good configuration. Unknown keys are errors: a typo must not silently fall back to a default.
/// Inheritance: a key missing from a profile takes the value of the <c>default</c> profile (vendor "Default" choice),
/// which itself falls back to the vendor defaults; bounce profiles inherit from the <c>default</c> bounce profile alike.
/// </summary>
public static class DestinationConfigLoader
{
    public const string DestinationsPath = "mtasts.destinations";
    public const string BounceProfilesPath = "mtasts.bounce-profiles";

    public static class Keys
    {
        public const string IpPreference = "ip-preference";
        public const string MaxConcurrentConnections = "max-concurrent-connections";
        public const string MaxMessagesPerConnection = "max-messages-per-connection";
        public const string MaxRecipientsPerTransaction = "max-recipients-per-transaction";
        public const string RecipientLimit = "recipient-limit";
        public const string RecipientLimitRecipients = "recipients";
        public const string RecipientLimitMinutes = "minutes";
        public const string LimitScope = "limit-scope";
        public const string LimitType = "limit-type";
        public const string TlsSupport = "tls-support";
        public const string ClientCertificate = "client-certificate";
        public const string DaneSupport = "dane-support";
        public const string MtaSts = "mta-sts";
        public const string BounceVerification = "bounce-verification";
        public const string BounceProfile = "bounce-profile";
        public const string SourceAddress = "source-address";
        public const string SmtpRoute = "smtp-route";
        public const string ThrottleRules = "throttle-rules";

        public const string MaxRetries = "max-retries";
        public const string MaxTimeInQueue = "max-time-in-queue";
        public const string InitialRetryInterval = "initial-retry-interval";
        public const string MaxRetryInterval = "max-retry-interval";
        public const string RetryJitter = "retry-jitter";
        public const string SendDsn = "send-dsn";
        public const string DelayWarning = "delay-warning";
        public const string DelayWarningInterval = "interval";
        public const string DelayWarningMaxCount = "max-count";

        public static readonly IReadOnlyList<string> Destination =
        [
            IpPreference, MaxConcurrentConnections, MaxMessagesPerConnection, MaxRecipientsPerTransaction, RecipientLimit,
            LimitScope, LimitType, TlsSupport, ClientCertificate, DaneSupport, MtaSts, BounceVerification, BounceProfile,
            SourceAddress, SmtpRoute, ThrottleRules,
        ];

        public static readonly IReadOnlyList<string> Bounce =
            [MaxRetries, MaxTimeInQueue, InitialRetryInterval, MaxRetryInterval, RetryJitter, SendDsn, DelayWarning];
    }

    private static readonly (string Text, IpPreference Value)[] IpPreferences =
        [("prefer-v4", IpPreference.PreferV4), ("prefer-v6", IpPreference.PreferV6), ("require-v4", IpPreference.RequireV4), ("require-v6", IpPreference.RequireV6)];
    private static readonly (string, LimitScope)[] LimitScopes =
        [("system-wide", LimitScope.SystemWide), ("per-gateway-hostname", LimitScope.PerGatewayHostname), ("per-virtual-gateway", LimitScope.PerVirtualGateway)];
    private static readonly (string, LimitType)[] LimitTypes = [("domain", LimitType.WholeDomain), ("mx-ip", LimitType.PerMxIp)];
    private static readonly (string, TlsSupport)[] TlsModes =
    [
        ("none", TlsSupport.None), ("preferred", TlsSupport.Preferred), ("required", TlsSupport.Required),
        ("preferred-verify", TlsSupport.PreferredVerify), ("required-verify", TlsSupport.RequiredVerify),
        ("required-verify-hosted-domains", TlsSupport.RequiredVerifyHostedDomains),
    ];
    private static readonly (string, DaneSupport)[] DaneModes =
        [("none", DaneSupport.None), ("opportunistic", DaneSupport.Opportunistic), ("mandatory", DaneSupport.Mandatory)];

    /// <summary>Parses HOCON text and loads it. A syntax error is reported as one error. Note that Akka's HOCON parser
    /// is lenient (an unclosed brace passes) and refuses a comma after a closing brace inside an object: separate
    /// profiles with new lines.</summary>
    public static ConfigLoadResult Parse(string hocon)
    {
        Config config;
        try
        {
            config = ConfigurationFactory.ParseString(hocon);
        }
        catch (Exception e)
        {
            return new ConfigLoadResult(null, [$"HOCON syntax error: {e.Message}"]);
        }
        return Load(config);
    }

    public static ConfigLoadResult Load(Config config)
    {
        var errors = new List<string>();
        var bounces = LoadBounceProfiles(Section(config, BounceProfilesPath, errors), errors);
        var profiles = LoadDestinations(Section(config, DestinationsPath, errors), bounces, errors);
        if (errors.Count > 0) return new ConfigLoadResult(null, errors);
        try
        {
            return new ConfigLoadResult(new DestinationConfig(new ProfileSet(profiles), bounces.Values), []);
        }
        catch (ArgumentException e) // duplicates are caught above; this is a safety net
        {
            return new ConfigLoadResult(null, [e.Message]);
        }
    }

    private static IReadOnlyList<KeyValuePair<string, HoconValue>> Section(Config config, string path, List<string> errors)
    {
        if (config.IsEmpty || !config.HasPath(path)) return [];
        var value = config.GetValue(path);
        if (value is null || value.IsEmpty) return [];
        if (!value.IsObject())
        {
            errors.Add($"{path} must be an object of named profiles, e.g. {path} {{ default {{ ... }} }}");
            return [];
        }
        return value.GetObject().Items.ToList();
    }

    // ---------------------------------------------------------------- bounce profiles

    private static Dictionary<string, BounceProfile> LoadBounceProfiles(IReadOnlyList<KeyValuePair<string, HoconValue>> items, List<string> errors)
    {
        var result = new Dictionary<string, BounceProfile>(StringComparer.Ordinal);
        var baseProfile = BounceProfile.Default;
        var def = items.FirstOrDefault(kv => kv.Key == BounceProfile.DefaultName);
        if (def.Value is not null)
        {
            baseProfile = ParseBounce(BounceProfile.DefaultName, def.Value, BounceProfile.Default, errors);
            result[BounceProfile.DefaultName] = baseProfile;
        }
        foreach (var (name, value) in items)
        {
            if (name == BounceProfile.DefaultName) continue;
            if (name.Length == 0 || name.Any(char.IsWhiteSpace))
            {
                errors.Add($"bounce-profile \"{name}\": the name must be non-empty and contain no spaces");
                continue;
            }
            result[name] = ParseBounce(name, value, baseProfile with { Name = name }, errors);
        }
        result.TryAdd(BounceProfile.DefaultName, BounceProfile.Default);
        return result;
    }

    private static BounceProfile ParseBounce(string name, HoconValue value, BounceProfile p, List<string> errors)
    {
        var ctx = new Ctx($"bounce-profile \"{name}\"", errors);
        if (!value.IsObject())
        {
            ctx.Error($"must be an object {{ {Keys.MaxRetries} = ..., ... }}");
            return p;
        }
        foreach (var (key, v) in value.GetObject().Items)
        {
            switch (key)
            {
                case Keys.MaxRetries:
                    if (ctx.Int(key, v, BounceProfile.MinRetries, BounceProfile.MaxRetriesLimit) is { } r) p = p with { MaxRetries = r };
                    break;
                case Keys.MaxTimeInQueue:
                    if (ctx.Duration(key, v, BounceProfile.MinTimeInQueue, BounceProfile.MaxTimeInQueueLimit) is { } t) p = p with { MaxTimeInQueue = t };
                    break;
                case Keys.InitialRetryInterval:
                    if (ctx.Duration(key, v, BounceProfile.MinRetryInterval, BounceProfile.MaxRetryIntervalLimit) is { } i) p = p with { InitialRetryInterval = i };
                    break;
                case Keys.MaxRetryInterval:
                    if (ctx.Duration(key, v, BounceProfile.MinRetryInterval, BounceProfile.MaxRetryIntervalLimit) is { } m) p = p with { MaxRetryInterval = m };
                    break;
                case Keys.RetryJitter:
                    if (ctx.Fraction(key, v, 0, BounceProfile.MaxJitter) is { } j) p = p with { RetryJitter = j };
                    break;
                case Keys.SendDsn:
                    if (ctx.Bool(key, v) is { } s) p = p with { SendDsn = s };
                    break;
                case Keys.DelayWarning:
                    p = p with { DelayWarning = ParseDelayWarning(ctx, v, p.DelayWarning) };
                    break;
                default:
                    ctx.Unknown(key, Keys.Bounce);
                    break;
            }
        }
        if (p.MaxRetryInterval < p.InitialRetryInterval)
            ctx.Error($"{Keys.MaxRetryInterval} = {FormatDuration(p.MaxRetryInterval)} is shorter than {Keys.InitialRetryInterval} = {FormatDuration(p.InitialRetryInterval)}");
        return p;
    }

    private static DelayWarning? ParseDelayWarning(Ctx ctx, HoconValue v, DelayWarning? inherited)
    {
        if (!v.IsObject())
        {
            var b = ctx.Bool(Keys.DelayWarning, v, $"is neither off nor an object {{ {Keys.DelayWarningInterval} = 4h, {Keys.DelayWarningMaxCount} = 1 }}");
            if (b == true) ctx.Error($"{Keys.DelayWarning} = on needs an interval: write {Keys.DelayWarning} {{ {Keys.DelayWarningInterval} = 4h }}");
            return null;
        }
        TimeSpan? interval = null;
        var count = inherited?.MaxCount ?? 1;
        foreach (var (key, item) in v.GetObject().Items)
        {
            var full = $"{Keys.DelayWarning}.{key}";
            switch (key)
            {
                case Keys.DelayWarningInterval:
                    interval = ctx.Duration(full, item, DelayWarning.MinInterval, DelayWarning.MaxIntervalLimit);
                    if (interval is null) return inherited;
                    break;
                case Keys.DelayWarningMaxCount:
                    if (ctx.Int(full, item, DelayWarning.MinCount, DelayWarning.MaxCountLimit) is { } c) count = c;
                    break;
                default:
                    ctx.Unknown(full, [Keys.DelayWarningInterval, Keys.DelayWarningMaxCount]);
                    break;
            }
        }
        interval ??= inherited?.Interval;
        if (interval is null)
        {
            ctx.Error($"{Keys.DelayWarning}.{Keys.DelayWarningInterval} is missing");
            return null;
        }
        return new DelayWarning(interval.Value, count);
    }

    // ---------------------------------------------------------------- destinations

    private static List<DestinationProfile> LoadDestinations(IReadOnlyList<KeyValuePair<string, HoconValue>> items,
        IReadOnlyDictionary<string, BounceProfile> bounces, List<string> errors)
    {
        var result = new List<DestinationProfile>();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal); // normalised → as written
        var baseProfile = DestinationProfile.Default;
        var def = items.FirstOrDefault(kv => DomainNames.Normalize(kv.Key) == DestinationProfile.DefaultName);
        if (def.Value is not null)
        {
            baseProfile = ParseDestination(def.Key, DestinationProfile.DefaultName, def.Value, DestinationProfile.Default, bounces, errors);
            result.Add(baseProfile);
            seen[DestinationProfile.DefaultName] = def.Key;
        }
        foreach (var (written, value) in items)
        {
            var name = DomainNames.Normalize(written);
            if (name == DestinationProfile.DefaultName)
            {
                if (!ReferenceEquals(value, def.Value)) errors.Add($"destination \"{written}\": duplicate of \"{def.Key}\"");
                continue;
            }
            var isSuffix = name.StartsWith('.');
            if (!DomainNames.IsValidHostName(isSuffix ? name.AsSpan(1) : name) || (isSuffix && name.Length > 1 && name[1] == '.'))
            {
                errors.Add($"destination \"{written}\": not a domain (example.com), a subdomain pattern (.example.com) or default; " +
                           "internationalised names must be written as A-labels (xn--...)");
                continue;
            }
            if (!seen.TryAdd(name, written))
            {
                errors.Add($"destination \"{written}\": duplicate of \"{seen[name]}\" (names are case-insensitive and a trailing dot is ignored)");
                continue;
            }
            result.Add(ParseDestination(written, name, value, baseProfile with { Destination = name }, bounces, errors));
        }
        return result;
    }

    private static DestinationProfile ParseDestination(string written, string name, HoconValue value, DestinationProfile p,
        IReadOnlyDictionary<string, BounceProfile> bounces, List<string> errors)
    {
        var ctx = new Ctx($"destination \"{written}\"", errors);
        p = p with { Destination = name };
        if (!value.IsObject())
        {
            ctx.Error($"must be an object {{ {Keys.MaxConcurrentConnections} = ..., ... }}");
            return p;
        }
        foreach (var (key, v) in value.GetObject().Items)
        {
            switch (key)
            {
                case Keys.IpPreference:
                    if (ctx.Enum(key, v, IpPreferences) is { } ip) p = p with { IpPreference = ip };
                    break;
                case Keys.MaxConcurrentConnections:
                    if (ctx.Int(key, v, DestinationProfile.MinConcurrentConnections, DestinationProfile.MaxConcurrentConnectionsLimit) is { } cc)
                        p = p with { MaxConcurrentConnections = cc };
                    break;
                case Keys.MaxMessagesPerConnection:
                    if (ctx.Int(key, v, DestinationProfile.MinMessagesPerConnection, DestinationProfile.MaxMessagesPerConnectionLimit) is { } mpc)
                        p = p with { MaxMessagesPerConnection = mpc };
                    break;
                case Keys.MaxRecipientsPerTransaction:
                    if (ctx.Int(key, v, DestinationProfile.MinRecipientsPerTransaction, DestinationProfile.MaxRecipientsPerTransactionLimit) is { } rpt)
                        p = p with { MaxRecipientsPerTransaction = rpt };
                    break;
                case Keys.RecipientLimit:
                    if (ParseRecipientLimit(ctx, v, out var limit)) p = p with { RecipientLimit = limit };
                    break;
                case Keys.LimitScope:
                    // Limits are counted by the destination entity, one per domain in the whole cluster: system-wide is
                    // cluster-wide; per-gateway-hostname is the same on a single node and refused by the gateway in a
                    // cluster. Per-virtual-gateway would need one budget per source address, which is not built.
                    if (ctx.Enum(key, v, LimitScopes) is { } scope)
                    {
                        if (scope == LimitScope.PerVirtualGateway)
                            ctx.Error($"{key} = per-virtual-gateway is not supported: limits are counted per gateway node, not per " +
                                      "source address; use system-wide or per-gateway-hostname (the same on a single node)");
                        else p = p with { LimitScope = scope };
                    }
                    break;
                case Keys.LimitType:
                    // mx-ip: max-concurrent-connections applies per MX IP address, shared by the destinations whose MX
                    // resolves to it (counted by the node's delivery transport; refused in a cluster by the gateway).
                    if (ctx.Enum(key, v, LimitTypes) is { } type) p = p with { LimitType = type };
                    break;
                case Keys.TlsSupport:
                    if (ctx.Enum(key, v, TlsModes) is { } tls) p = p with { TlsSupport = tls };
                    break;
                case Keys.DaneSupport:
                    if (ctx.Enum(key, v, DaneModes) is { } dane) p = p with { DaneSupport = dane };
                    break;
                case Keys.ClientCertificate:
                    if (ctx.String(key, v) is { } cert) p = p with { ClientCertificate = cert.Length == 0 ? null : cert };
                    break;
                case Keys.MtaSts:
                    if (ctx.Bool(key, v) is { } sts) p = p with { MtaSts = sts };
                    break;
                case Keys.BounceVerification:
                    // "on" needs keys and our sender domains (mtasts.bounce-verification): checked by the gateway's loader.
                    if (ctx.Bool(key, v) is { } bv) p = p with { BounceVerification = bv };
                    break;
                case Keys.BounceProfile:
                    if (ctx.String(key, v) is { } bp)
                    {
                        if (bounces.ContainsKey(bp)) p = p with { BounceProfile = bp };
                        else ctx.Error($"{key} = \"{bp}\" names no bounce profile (known: {string.Join(", ", bounces.Keys.Order(StringComparer.Ordinal))})");
                    }
                    break;
                case Keys.SourceAddress:
                    if (ctx.String(key, v) is { } src)
                    {
                        if (src.Length == 0) p = p with { SourceAddress = null };
                        else if (IPAddress.TryParse(src, out var sip)) p = p with { SourceAddress = sip.ToString() };
                        else if (src.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) p = p with { SourceAddress = src };
                        else ctx.Error($"{key} = \"{src}\" is neither an IP address nor a virtual gateway name (letters, digits, '-', '_', '.')");
                    }
                    break;
                case Keys.SmtpRoute:
                    if (ParseRoute(ctx, v, out var route)) p = p with { SmtpRoute = route };
                    break;
                case Keys.ThrottleRules:
                    if (ParseThrottleRules(ctx, v, out var rules)) p = p with { ThrottleRules = rules };
                    break;
                default:
                    ctx.Unknown(key, Keys.Destination);
                    break;
            }
        }
        return p;
    }

    private static bool ParseRecipientLimit(Ctx ctx, HoconValue v, out RecipientLimit? limit)
    {
        limit = null;
        const string Shape = "unlimited or { recipients = N, minutes = M }";
        if (!v.IsObject())
        {
            var text = ctx.String(Keys.RecipientLimit, v);
            if (text is null) return false;
            if (text.ToLowerInvariant() is "unlimited" or "none" or "off" or "no-limit") return true;
            ctx.Error($"{Keys.RecipientLimit} = \"{text}\" is not {Shape}");
            return false;
        }
        long? recipients = null;
        int? minutes = null;
        var ok = true;
        foreach (var (key, item) in v.GetObject().Items)
        {
            var full = $"{Keys.RecipientLimit}.{key}";
            switch (key)
            {
                case Keys.RecipientLimitRecipients:
                    recipients = ctx.Long(full, item, RecipientLimit.MinRecipients, RecipientLimit.MaxRecipients);
                    ok &= recipients is not null;
                    break;
                case Keys.RecipientLimitMinutes:
                    minutes = ctx.Int(full, item, RecipientLimit.MinMinutes, RecipientLimit.MaxMinutes);
                    ok &= minutes is not null;
                    break;
                default:
                    ctx.Unknown(full, [Keys.RecipientLimitRecipients, Keys.RecipientLimitMinutes]);
                    ok = false;
                    break;
            }
        }
        if (!ok) return false;
        if (recipients is null || minutes is null)
        {
            ctx.Error($"{Keys.RecipientLimit} needs both {Keys.RecipientLimitRecipients} and {Keys.RecipientLimitMinutes} ({Shape})");
            return false;
        }
        limit = new RecipientLimit(recipients.Value, minutes.Value);
        return true;
    }

    private static bool ParseRoute(Ctx ctx, HoconValue v, out IReadOnlyList<SmtpRouteHost> route)
    {
        route = [];
        List<string> texts;
        if (IsArray(v))
        {
            texts = [];
            foreach (var item in v.GetArray())
            {
                if (!item.IsString()) { ctx.Error($"{Keys.SmtpRoute} entries must be strings \"host[:port]\""); return false; }
                texts.Add(item.GetString() ?? "");
            }
        }
        else
        {
            var one = ctx.String(Keys.SmtpRoute, v);
            if (one is null) return false;
            texts = one.Length == 0 ? [] : [.. one.Split(',')];
        }
        var hosts = new List<SmtpRouteHost>(texts.Count);
        var ok = true;
        foreach (var t in texts)
        {
            if (SmtpRouteHost.TryParse(t, out var h, out var err)) hosts.Add(h);
            else { ctx.Error($"{Keys.SmtpRoute} entry \"{t}\": {err}"); ok = false; }
        }
        if (ok) route = hosts;
        return ok;
    }

    /// <summary><c>throttle-rules = [ { name = ..., code = 421, action = ..., ... } ]</c> (see <see cref="Throttling.ThrottleRuleParser"/>).</summary>
    private static bool ParseThrottleRules(Ctx ctx, HoconValue v, out IReadOnlyList<Throttling.ThrottleRule> rules)
    {
        rules = [];
        if (!IsArray(v))
        {
            ctx.Error($"{Keys.ThrottleRules} must be a list of rules [ {{ name = ..., code = 421, action = limit-connections, connections = 2, duration = 5m }} ]");
            return false;
        }
        var items = v.GetArray().Select(item => item.IsObject()
            ? (IReadOnlyList<KeyValuePair<string, string?>>)item.GetObject().Items
                .Select(kv => new KeyValuePair<string, string?>(kv.Key,
                    kv.Value.IsObject() || IsArray(kv.Value) || !kv.Value.IsString() ? null : kv.Value.GetString())).ToArray()
            : null).ToArray();
        var ok = true;
        rules = Throttling.ThrottleRuleParser.ParseList(Keys.ThrottleRules, items, e => { ctx.Error(e); ok = false; });
        return ok;
    }

    // ---------------------------------------------------------------- value helpers

    // Akka's IsArray() is false for an empty array "[]".
    private static bool IsArray(HoconValue v) => v.IsArray() || (v.Values.Count > 0 && v.Values[0] is HoconArray);

    internal static string FormatDuration(TimeSpan t)
    {
        if (t.Ticks % TimeSpan.TicksPerDay == 0) return $"{t.Ticks / TimeSpan.TicksPerDay}d";
        if (t.Ticks % TimeSpan.TicksPerHour == 0) return $"{t.Ticks / TimeSpan.TicksPerHour}h";
        if (t.Ticks % TimeSpan.TicksPerMinute == 0) return $"{t.Ticks / TimeSpan.TicksPerMinute}m";
        if (t.Ticks % TimeSpan.TicksPerSecond == 0) return $"{t.Ticks / TimeSpan.TicksPerSecond}s";
        return $"{t.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)}ms";
    }

    private static int Distance(string a, string b)
    {
        var d = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) d[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            var prev = d[0];
            d[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var tmp = d[j];
                d[j] = Math.Min(Math.Min(d[j] + 1, d[j - 1] + 1), prev + (a[i - 1] == b[j - 1] ? 0 : 1));
                prev = tmp;
            }
        }
        return d[b.Length];
    }

    private sealed class Ctx(string owner, List<string> errors)
    {
        public void Error(string message) => errors.Add($"{owner}: {message}");

        public void Unknown(string key, IReadOnlyList<string> known)
        {
            var leaf = key[(key.LastIndexOf('.') + 1)..];
            var best = known.MinBy(k => Distance(k, leaf));
            var hint = best is not null && Distance(best, leaf) <= Math.Max(3, leaf.Length / 4) ? $" (did you mean \"{best}\"?)" : "";
            Error($"unknown setting \"{key}\"{hint}");
        }

        private static string Show(string raw) => raw.Length > 0 && raw.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_') ? raw : $"\"{raw}\"";

        /// <summary>The scalar text of a value, or an error if it is an object, an array or null.</summary>
        public string? String(string key, HoconValue v)
        {
            if (v.IsObject() || IsArray(v) || !v.IsString())
            {
                Error($"{key} must be a single value");
                return null;
            }
            var s = v.GetString();
            if (s is null) { Error($"{key} must not be null"); return null; }
            return s.Trim();
        }

        public long? Long(string key, HoconValue v, long min, long max)
        {
            var s = String(key, v);
            if (s is null) return null;
            if (!long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
            {
                Error($"{key} = {Show(s)} is not a whole number (allowed range {min}..{max})");
                return null;
            }
            if (n < min || n > max)
            {
                Error($"{key} = {n} is out of range {min}..{max}");
                return null;
            }
            return n;
        }

        public int? Int(string key, HoconValue v, int min, int max) => (int?)Long(key, v, min, max);

        public double? Fraction(string key, HoconValue v, double min, double max)
        {
            var s = String(key, v);
            if (s is null) return null;
            if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) || double.IsNaN(d))
            {
                Error($"{key} = {Show(s)} is not a number (allowed range {min.ToString(CultureInfo.InvariantCulture)}..{max.ToString(CultureInfo.InvariantCulture)})");
                return null;
            }
            if (d < min || d > max)
            {
                Error($"{key} = {s} is out of range {min.ToString(CultureInfo.InvariantCulture)}..{max.ToString(CultureInfo.InvariantCulture)}");
                return null;
            }
            return d;
        }

        public TimeSpan? Duration(string key, HoconValue v, TimeSpan min, TimeSpan max)
        {
            var s = String(key, v);
            if (s is null) return null;
            if (!ConfigSection.TryParseDuration(s, out var t))
            {
                Error($"{key} = {Show(s)} is not a duration (a number with a unit ms, s, m, h or d, e.g. 60s)");
                return null;
            }
            if (t < min || t > max)
            {
                Error($"{key} = {s} is out of range {FormatDuration(min)}..{FormatDuration(max)}");
                return null;
            }
            return t;
        }

        public bool? Bool(string key, HoconValue v, string? what = null)
        {
            var s = String(key, v);
            if (s is null) return null;
            switch (s.ToLowerInvariant())
            {
                case "on" or "true" or "yes": return true;
                case "off" or "false" or "no": return false;
                default:
                    Error($"{key} = {Show(s)} {what ?? "is not a boolean (on/off, true/false, yes/no)"}");
                    return null;
            }
        }

        public T? Enum<T>(string key, HoconValue v, (string Text, T Value)[] choices) where T : struct, System.Enum
        {
            var s = String(key, v);
            if (s is null) return null;
            foreach (var (text, value) in choices)
                if (string.Equals(text, s, StringComparison.OrdinalIgnoreCase)) return value;
            Error($"{key} = {Show(s)} is not one of {string.Join(", ", choices.Select(c => c.Text))}");
            return null;
        }
    }
}
