namespace MtaSts.Actors.DestinationControls;

/// <summary>
/// The destination controls of one destination (SPEC §2; vendor "Destination Controls" / <c>destconfig</c>).
/// Property initialisers are the vendor defaults, so <c>new DestinationProfile()</c> is the factory default profile.
/// </summary>
public sealed record DestinationProfile
{
    public const string DefaultName = "default";
    public const int MinConcurrentConnections = 1, MaxConcurrentConnectionsLimit = 1000;
    public const int MinMessagesPerConnection = 1, MaxMessagesPerConnectionLimit = 1000;
    public const int MinRecipientsPerTransaction = 1, MaxRecipientsPerTransactionLimit = 1000;

    /// <summary>Vendor factory defaults (the <c>default</c> profile when the configuration says nothing).</summary>
    public static DestinationProfile Default { get; } = new();

    /// <summary><c>example.com</c> (that domain only), <c>.example.com</c> (its subdomains only) or <c>default</c>.
    /// Always normalised: lower case, no trailing dot.</summary>
    public string Destination { get; init; } = DefaultName;

    public IpPreference IpPreference { get; init; } = IpPreference.PreferV4;

    /// <summary>Simultaneous connections the gateway opens to the destination (1..1000, 500).</summary>
    public int MaxConcurrentConnections { get; init; } = 500;

    /// <summary>Messages sent over one connection before a new one is opened (1..1000, 50).</summary>
    public int MaxMessagesPerConnection { get; init; } = 50;

    /// <summary>Not a vendor destination control: RCPTs per transaction. RFC 5321 §4.5.3.1.8 says a server must
    /// accept at least 100, so 100 is safe everywhere (KumoMTA's <c>max_recipients_per_batch</c> is also 100).</summary>
    public int MaxRecipientsPerTransaction { get; init; } = 100;

    /// <summary><c>null</c> = no limit (vendor default).</summary>
    public RecipientLimit? RecipientLimit { get; init; }

    public LimitScope LimitScope { get; init; } = LimitScope.SystemWide;

    public LimitType LimitType { get; init; } = LimitType.WholeDomain;

    public TlsSupport TlsSupport { get; init; } = TlsSupport.Preferred;

    /// <summary>Certificate presented in STARTTLS (a path or a store name); <c>null</c> = none.</summary>
    public string? ClientCertificate { get; init; }

    public DaneSupport DaneSupport { get; init; } = DaneSupport.None;

    /// <summary>Apply MTA-STS (RFC 8461) for this destination. Vendor default: no; ours: yes, since a cached, shared,
    /// proactively refreshed policy costs ≈ 1 % of throughput (load-tests/README.md, mta-sts-everywhere) and a domain
    /// without a policy is delivered as before.</summary>
    public bool MtaSts { get; init; } = true;

    /// <summary>Tag the envelope sender so that forged bounces can be told apart (vendor "bounce verification").</summary>
    public bool BounceVerification { get; init; }

    /// <summary>Name of the <see cref="BounceProfile"/> that governs retries and DSNs.</summary>
    public string BounceProfile { get; init; } = DestinationControls.BounceProfile.DefaultName;

    /// <summary>Source IP address or virtual gateway name for outbound connections; <c>null</c> = the system default.</summary>
    public string? SourceAddress { get; init; }

    /// <summary>Static next hops, tried in order, instead of the MX records. When set, MTA-STS and DANE are not
    /// enforced (SPEC §2: an SMTP route overrides MX lookup). Empty = use MX (RFC 5321 §5.1).</summary>
    public IReadOnlyList<SmtpRouteHost> SmtpRoute { get; init; } = [];

    /// <summary>Reply-driven throttling rules of this destination, tried before the global ones (<c>throttle-rules</c>;
    /// empty: only the global and built-in rules apply).</summary>
    public IReadOnlyList<Throttling.ThrottleRule> ThrottleRules { get; init; } = [];

    public bool IsDefault => Destination == DefaultName;

    /// <summary>True when this profile covers subdomains (<c>.example.com</c>).</summary>
    public bool IsSubdomainPattern => Destination.StartsWith('.');

    public bool HasSmtpRoute => SmtpRoute.Count > 0;

    /// <summary>MTA-STS is enforced only without an SMTP route (SPEC §2).</summary>
    public bool EnforcesMtaSts => MtaSts && !HasSmtpRoute;

    /// <summary>DANE is enforced only without an SMTP route (SPEC §2).</summary>
    public DaneSupport EffectiveDane => HasSmtpRoute ? DaneSupport.None : DaneSupport;

    // Records compare collections by reference; compare the route by content so that reload can detect "unchanged".
    public bool Equals(DestinationProfile? other) =>
        other is not null &&
        Destination == other.Destination && IpPreference == other.IpPreference &&
        MaxConcurrentConnections == other.MaxConcurrentConnections && MaxMessagesPerConnection == other.MaxMessagesPerConnection &&
        MaxRecipientsPerTransaction == other.MaxRecipientsPerTransaction && Equals(RecipientLimit, other.RecipientLimit) &&
        LimitScope == other.LimitScope && LimitType == other.LimitType && TlsSupport == other.TlsSupport &&
        ClientCertificate == other.ClientCertificate && DaneSupport == other.DaneSupport && MtaSts == other.MtaSts &&
        BounceVerification == other.BounceVerification && BounceProfile == other.BounceProfile &&
        SourceAddress == other.SourceAddress && SmtpRoute.SequenceEqual(other.SmtpRoute) &&
        ThrottleRules.SequenceEqual(other.ThrottleRules);

    public override int GetHashCode() => HashCode.Combine(Destination, MaxConcurrentConnections, MaxMessagesPerConnection, TlsSupport, MtaSts, BounceProfile, SmtpRoute.Count);
}
