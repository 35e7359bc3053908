using System.Net;
using System.Security.Cryptography.X509Certificates;
using MtaSts.Actors.Configuration;
using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>The <c>mtasts.listener</c> section: the listener's options (every default is the one written in
/// <see cref="SmtpListenerOptions"/>) and the files of its STARTTLS key pair, loaded when the listener starts.</summary>
public sealed record ListenerConfig
{
    public SmtpListenerOptions Options { get; init; } = new();

    /// <summary>PEM certificate for STARTTLS (with <see cref="TlsKey"/>); null: STARTTLS is not offered.</summary>
    public string? TlsCertificate { get; init; }

    public string? TlsKey { get; init; }

    /// <summary>The options to start a listener with: the certificate loaded from its files.</summary>
    public SmtpListenerOptions LoadCertificate() =>
        TlsCertificate is null ? Options : Options with { Certificate = X509Certificate2.CreateFromPemFile(TlsCertificate, TlsKey) };

    public static ListenerConfig Read(ConfigSection s)
    {
        var d = new SmtpListenerOptions();
        var users = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (user, password) in s.Entries("users")) users[user] = password;
        var auth = new AuthThrottleOptions
        {
            BaseDelay = s.Duration("auth-base-delay", d.AuthThrottle.BaseDelay),
            MaxDelay = s.Duration("auth-max-delay", d.AuthThrottle.MaxDelay),
            MaxFailuresPerAddress = s.Int("auth-max-failures-per-address", d.AuthThrottle.MaxFailuresPerAddress, 0, 1_000_000),
            MaxFailuresPerUser = s.Int("auth-max-failures-per-user", d.AuthThrottle.MaxFailuresPerUser, 0, 1_000_000),
            FailureWindow = s.Duration("auth-failure-window", d.AuthThrottle.FailureWindow),
            LockoutDuration = s.Duration("auth-lockout-duration", d.AuthThrottle.LockoutDuration),
        };
        s.Validate(auth.Validate);
        var options = d with
        {
            Endpoints = s.Get<IReadOnlyList<IPEndPoint>>("endpoints", d.Endpoints, _ =>
                s.List("endpoints").Select(e => ConfigSection.ParseEndPoint(e, 25)).ToArray()),
            MaxMessageSize = s.Long("max-message-size", d.MaxMessageSize),
            MaxRecipients = s.Int("max-recipients", d.MaxRecipients, 1, 100_000),
            MaxConcurrentSessions = s.Int("max-sessions", d.MaxConcurrentSessions, 1, 100_000),
            BareLineEndings = s.Get("bare-line-endings", d.BareLineEndings, v => v switch
            {
                "reject" => BareLineEndingPolicy.Reject,
                "normalize" or "normalise" => BareLineEndingPolicy.Normalize,
                _ => throw new FormatException("expected reject or normalize"),
            }),
            ClientLimits = Limits(s.Section("client-limits"), d.ClientLimits),
            RelayClientLimits = Limits(s.Section("relay-client-limits"), d.RelayClientLimits),
            AuthThrottle = auth,
            BodyMemoryLimit = s.Int("body-memory-limit", d.BodyMemoryLimit, 4096, 64 * 1024 * 1024),
            MaxDataInFlight = s.Get("max-data-in-flight", d.MaxDataInFlight, v =>
                long.Parse(v, System.Globalization.CultureInfo.InvariantCulture) is var n && n >= 1024 * 1024 ? n
                    : throw new FormatException("at least 1048576 bytes")),
            CommandTimeout = s.Duration("command-timeout", d.CommandTimeout),
            DataTimeout = s.Duration("data-timeout", d.DataTimeout),
            RelayNetworks = s.Get("relay-networks", d.RelayNetworks, _ =>
                s.List("relay-networks").Select(n => IPNetwork.Parse(n.AsSpan())).ToArray()),
            AuthUsers = users.Count == 0 ? null : users,
        };
        var config = new ListenerConfig { Options = options, TlsCertificate = s.NonEmpty("tls-certificate"), TlsKey = s.NonEmpty("tls-key") };
        if (options.MaxDataInFlight < options.MaxMessageSize)
            s.Error($"{s.Path}.max-data-in-flight ({options.MaxDataInFlight}) must be at least max-message-size ({options.MaxMessageSize})");
        if (options.MaxMessageSize is < 1 or > 1024L * 1024 * 1023)
            s.Error($"{s.Path}.max-message-size = {options.MaxMessageSize}: out of range 1..1072693248 (a spool record holds at most 1 GiB)");
        if ((config.TlsCertificate is null) != (config.TlsKey is null))
            s.Error($"{s.Path}.tls-certificate and tls-key must be given together");
        return config;
    }

    private static ClientLimits Limits(ConfigSection s, ClientLimits d)
    {
        var l = d with
        {
            MaxSessions = s.Int("max-sessions-per-client", d.MaxSessions, 0, 100_000),
            ConnectionsPerMinute = s.Int("connections-per-minute", d.ConnectionsPerMinute, 0, 1_000_000),
            MessagesPerMinute = s.Int("messages-per-minute", d.MessagesPerMinute, 0, 10_000_000),
            MaxSessionDuration = s.Duration("max-session-duration", d.MaxSessionDuration),
            MaxNonTransactionCommands = s.Int("max-non-transaction-commands", d.MaxNonTransactionCommands, 0, 1_000_000),
            SoftErrorLimit = s.Int("soft-error-limit", d.SoftErrorLimit, 0, 1000),
            ErrorDelay = s.Duration("error-delay", d.ErrorDelay),
        };
        s.Validate(l.Validate);
        return l;
    }
}
