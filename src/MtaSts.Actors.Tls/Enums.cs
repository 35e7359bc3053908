namespace MtaSts.Actors.Tls;

/// <summary>Destination-control TLS support (SPEC §2, vendor TAC 118955). Canonical definition.</summary>
public enum TlsSupport
{
    /// <summary>TLS is not negotiated.</summary>
    None,
    /// <summary>STARTTLS when offered; plaintext if it is not offered or fails before the 220 reply; no verification.</summary>
    Preferred,
    /// <summary>STARTTLS must succeed (else defer); the certificate is not verified.</summary>
    Required,
    /// <summary>STARTTLS when offered; the certificate is verified against the recipient domain, failures are reported only.</summary>
    PreferredVerify,
    /// <summary>STARTTLS and PKIX verification against the recipient domain must both succeed (else defer).</summary>
    RequiredVerify,
    /// <summary>As <see cref="RequiredVerify"/>, but a certificate naming the MX host is also accepted (hosted mail).</summary>
    RequiredVerifyHostedDomains,
}

/// <summary>Destination-control DANE support (SPEC §2; RFC 7672).</summary>
public enum DaneSupport
{
    None,
    /// <summary>DANE when the MX publishes usable DNSSEC-validated TLSA records; otherwise the profile/MTA-STS rules.</summary>
    Opportunistic,
    /// <summary>Deliver only to MX hosts that pass DANE authentication.</summary>
    Mandatory,
}

/// <summary>Address family choice for delivery connections (SPEC §2 "IP address preference").</summary>
public enum IpPreference { PreferV4, PreferV6, RequireV4, RequireV6 }

/// <summary>The MTA-STS policy in force for the recipient domain, as the planner needs it (RFC 8461 §5).
/// <see cref="None"/> also covers "profile has MTA-STS off", "no policy" and "policy fetch failed, nothing cached".</summary>
public enum MtaStsMode { None, Testing, Enforce }
