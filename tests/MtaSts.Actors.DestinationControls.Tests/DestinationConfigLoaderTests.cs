using Akka.Configuration;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.DestinationControls.Tests;

public sealed class DestinationConfigLoaderTests
{
    private static DestinationConfig Ok(string hocon)
    {
        var r = DestinationConfigLoader.Parse(hocon);
        Assert.True(r.IsValid, string.Join("\n", r.Errors));
        Assert.Empty(r.Errors);
        return r.Config!;
    }

    private static IReadOnlyList<string> Errors(string hocon)
    {
        var r = DestinationConfigLoader.Parse(hocon);
        Assert.False(r.IsValid);
        Assert.Null(r.Config);
        Assert.NotEmpty(r.Errors);
        return r.Errors;
    }

    private static string Dest(string name, string body) => $"mtasts.destinations {{ \"{name}\" {{ {body} }} }}";

    [Fact]
    public void Empty_config_gives_vendor_defaults()
    {
        var c = Ok("");
        Assert.Equal(DestinationProfile.Default, c.Profiles.Default);
        Assert.Equal(BounceProfile.Default, c.BounceProfiles["default"]);
        var (p, b) = c.Resolve("anything.example");
        Assert.Equal(500, p.MaxConcurrentConnections);
        Assert.Equal(100, b.MaxRetries);
    }

    [Fact]
    public void MTA_STS_is_on_by_default_and_off_in_the_default_profile_turns_it_off_for_every_destination_without_its_own_value()
    {
        Assert.True(Ok("mtasts.destinations { \"a.test\" { tls-support = required } }").Profiles.Resolve("a.test").MtaSts);
        Assert.True(Ok("").Profiles.Resolve("x.test").MtaSts);

        var off = Ok("mtasts.destinations {\n default { mta-sts = off }\n \"a.test\" { tls-support = required }\n \"b.test\" { mta-sts = on }\n}");
        Assert.False(off.Profiles.Resolve("a.test").MtaSts);
        Assert.False(off.Profiles.Resolve("x.test").MtaSts);
        Assert.True(off.Profiles.Resolve("b.test").MtaSts);
    }

    [Fact]
    public void The_shipped_sample_file_is_valid_and_documents_every_key()
    {
        var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "destinations.conf"));
        var c = Ok(text);
        foreach (var key in DestinationConfigLoader.Keys.Destination.Concat(DestinationConfigLoader.Keys.Bounce))
            Assert.Contains(key + " ", text);
        // The default entry in the sample restates the vendor defaults (retry-jitter is ours and also default).
        Assert.Equal(DestinationProfile.Default, c.Profiles.Default);
        Assert.Equal(BounceProfile.Default, c.BounceProfiles["default"]);

        var ex = c.Profiles.Resolve("example.com");
        Assert.True(ex.MtaSts);
        Assert.Equal(TlsSupport.RequiredVerify, ex.TlsSupport);
        Assert.Equal(20, ex.MaxConcurrentConnections);
        Assert.Equal(new RecipientLimit(1000, 10), ex.RecipientLimit);
        Assert.Equal(50, ex.MaxMessagesPerConnection); // inherited

        var sub = c.Profiles.Resolve("mx.example.com");
        Assert.Equal(".example.com", sub.Destination);
        Assert.Equal(50, sub.MaxRecipientsPerTransaction);
        Assert.True(sub.MtaSts); // inherited from the default profile (on)

        var (partner, fast) = c.Resolve("partner.example");
        Assert.Equal([new SmtpRouteHost("relay.partner.example", 2525), new SmtpRouteHost("192.0.2.10")], partner.SmtpRoute);
        Assert.Equal("fast", fast.Name);
        Assert.Equal(5, fast.MaxRetries);
        Assert.Equal(TimeSpan.FromHours(1), fast.MaxTimeInQueue);
        Assert.Equal(TimeSpan.FromSeconds(30), fast.InitialRetryInterval);
        Assert.Equal(TimeSpan.FromMinutes(10), fast.MaxRetryInterval);
        Assert.Equal(new DelayWarning(TimeSpan.FromMinutes(30), 1), fast.DelayWarning);
        Assert.True(fast.SendDsn); // inherited from the default bounce profile
    }

    [Fact]
    public void Every_destination_key_is_parsed()
    {
        var c = Ok("""
            mtasts.bounce-profiles { slow { max-retries = 3 } }
            mtasts.destinations {
              "Example.COM." {
                ip-preference = require-v6
                max-concurrent-connections = 1000
                max-messages-per-connection = 1
                max-recipients-per-transaction = 1000
                recipient-limit { recipients = 0, minutes = 60 }
                limit-scope = per-gateway-hostname
                limit-type = mx-ip
                tls-support = required-verify-hosted-domains
                client-certificate = "/etc/mtasts/client.pem"
                dane-support = mandatory
                mta-sts = yes
                bounce-verification = false
                bounce-profile = slow
                source-address = "2001:db8::0:1"
                smtp-route = "a.example:26, [192.0.2.1]"
              }
            }
            """);
        var p = c.Profiles.Resolve("example.com");
        Assert.Equal(new DestinationProfile
        {
            Destination = "example.com",
            IpPreference = IpPreference.RequireV6,
            MaxConcurrentConnections = 1000,
            MaxMessagesPerConnection = 1,
            MaxRecipientsPerTransaction = 1000,
            RecipientLimit = new RecipientLimit(0, 60),
            LimitScope = LimitScope.PerGatewayHostname,
            LimitType = LimitType.PerMxIp,
            TlsSupport = TlsSupport.RequiredVerifyHostedDomains,
            ClientCertificate = "/etc/mtasts/client.pem",
            DaneSupport = DaneSupport.Mandatory,
            MtaSts = true,
            BounceProfile = "slow",
            SourceAddress = "2001:db8::1",
            SmtpRoute = [new SmtpRouteHost("a.example", 26), new SmtpRouteHost("192.0.2.1")],
        }, p);
        Assert.Equal(3, c.BounceProfileFor(p).MaxRetries);
    }

    [Theory]
    [InlineData("ip-preference = prefer-v6", nameof(IpPreference))]
    [InlineData("limit-scope = per-gateway-hostname", nameof(LimitScope))]
    [InlineData("tls-support = NONE", nameof(TlsSupport))]
    [InlineData("dane-support = opportunistic", nameof(DaneSupport))]
    public void Enum_values_are_case_insensitive(string line, string _)
    {
        var p = Ok(Dest("example.com", line)).Profiles.Resolve("example.com");
        Assert.NotEqual(DestinationProfile.Default with { Destination = "example.com" }, p);
    }

    [Fact]
    public void Profiles_inherit_from_the_configured_default()
    {
        var c = Ok("""
            mtasts.destinations {
              default { max-concurrent-connections = 10, tls-support = required, recipient-limit { recipients = 5, minutes = 1 } }
              "example.com" { max-messages-per-connection = 7 }
              ".example.com" { recipient-limit = unlimited, tls-support = none }
            }
            """);
        var p = c.Profiles.Resolve("example.com");
        Assert.Equal((10, 7, TlsSupport.Required), (p.MaxConcurrentConnections, p.MaxMessagesPerConnection, p.TlsSupport));
        Assert.Equal(new RecipientLimit(5, 1), p.RecipientLimit);
        var s = c.Profiles.Resolve("a.example.com");
        Assert.Null(s.RecipientLimit);
        Assert.Equal(TlsSupport.None, s.TlsSupport);
        Assert.Equal(10, s.MaxConcurrentConnections);
        Assert.Equal(10, c.Profiles.Resolve("other.example").MaxConcurrentConnections);
    }

    [Fact]
    public void Bounce_profiles_inherit_from_the_configured_default()
    {
        var c = Ok("""
            mtasts.bounce-profiles {
              default { max-retries = 7, send-dsn = off, retry-jitter = 0 }
              quick { max-time-in-queue = 10m }
            }
            """);
        var q = c.BounceProfiles["quick"];
        Assert.Equal(("quick", 7, false, 0.0, TimeSpan.FromMinutes(10)), (q.Name, q.MaxRetries, q.SendDsn, q.RetryJitter, q.MaxTimeInQueue));
    }

    [Theory]
    [InlineData("max-messages-per-connection = 0", "destination \"example.com\": max-messages-per-connection = 0 is out of range 1..1000")]
    [InlineData("max-messages-per-connection = 1001", "destination \"example.com\": max-messages-per-connection = 1001 is out of range 1..1000")]
    [InlineData("max-concurrent-connections = 0", "destination \"example.com\": max-concurrent-connections = 0 is out of range 1..1000")]
    [InlineData("max-concurrent-connections = many", "destination \"example.com\": max-concurrent-connections = many is not a whole number (allowed range 1..1000)")]
    [InlineData("max-recipients-per-transaction = 0", "destination \"example.com\": max-recipients-per-transaction = 0 is out of range 1..1000")]
    [InlineData("recipient-limit { recipients = 1000000001, minutes = 1 }", "destination \"example.com\": recipient-limit.recipients = 1000000001 is out of range 0..1000000000")]
    [InlineData("recipient-limit { recipients = -1, minutes = 1 }", "destination \"example.com\": recipient-limit.recipients = -1 is out of range 0..1000000000")]
    [InlineData("recipient-limit { recipients = 10, minutes = 61 }", "destination \"example.com\": recipient-limit.minutes = 61 is out of range 1..60")]
    [InlineData("recipient-limit { recipients = 10, minutes = 0 }", "destination \"example.com\": recipient-limit.minutes = 0 is out of range 1..60")]
    [InlineData("recipient-limit { recipients = 10 }", "destination \"example.com\": recipient-limit needs both recipients and minutes (unlimited or { recipients = N, minutes = M })")]
    [InlineData("recipient-limit { recipients = 10, minutes = 1, hours = 2 }", "destination \"example.com\": unknown setting \"recipient-limit.hours\"")]
    [InlineData("recipient-limit = lots", "destination \"example.com\": recipient-limit = \"lots\" is not unlimited or { recipients = N, minutes = M }")]
    [InlineData("ip-preference = v4", "destination \"example.com\": ip-preference = v4 is not one of prefer-v4, prefer-v6, require-v4, require-v6")]
    [InlineData("limit-scope = global", "destination \"example.com\": limit-scope = global is not one of system-wide, per-gateway-hostname, per-virtual-gateway")]
    [InlineData("limit-type = host", "destination \"example.com\": limit-type = host is not one of domain, mx-ip")]
    // Vendor values that are not built yet are refused, naming the setting (a limit that is accepted must be enforced).
    [InlineData("limit-scope = per-virtual-gateway", "destination \"example.com\": limit-scope = per-virtual-gateway is not supported: limits are counted per gateway node, not per source address; use system-wide or per-gateway-hostname (the same on a single node)")]
    [InlineData("tls-support = maybe", "destination \"example.com\": tls-support = maybe is not one of none, preferred, required, preferred-verify, required-verify, required-verify-hosted-domains")]
    [InlineData("dane-support = yes", "destination \"example.com\": dane-support = yes is not one of none, opportunistic, mandatory")]
    [InlineData("mta-sts = sometimes", "destination \"example.com\": mta-sts = sometimes is not a boolean (on/off, true/false, yes/no)")]
    [InlineData("bounce-verification = [on]", "destination \"example.com\": bounce-verification must be a single value")]
    [InlineData("bounce-profile = nope", "destination \"example.com\": bounce-profile = \"nope\" names no bounce profile (known: default)")]
    [InlineData("source-address = \"eth0 10.0.0.1\"", "destination \"example.com\": source-address = \"eth0 10.0.0.1\" is neither an IP address nor a virtual gateway name (letters, digits, '-', '_', '.')")]
    [InlineData("smtp-route = [\"relay.example:99999\"]", "destination \"example.com\": smtp-route entry \"relay.example:99999\": port '99999' is out of range 1..65535")]
    [InlineData("smtp-route = [{ host = a }]", "destination \"example.com\": smtp-route entries must be strings \"host[:port]\"")]
    [InlineData("max-mesages-per-connection = 5", "destination \"example.com\": unknown setting \"max-mesages-per-connection\" (did you mean \"max-messages-per-connection\"?)")]
    [InlineData("colour = blue", "destination \"example.com\": unknown setting \"colour\"")]
    public void Invalid_destination_values_are_named_precisely(string line, string expected) =>
        Assert.Equal([expected], Errors(Dest("example.com", line)));

    [Theory]
    [InlineData("max-retries = -1", "bounce-profile \"fast\": max-retries = -1 is out of range 0..10000")]
    [InlineData("max-retries = 10001", "bounce-profile \"fast\": max-retries = 10001 is out of range 0..10000")]
    [InlineData("max-time-in-queue = 100", "bounce-profile \"fast\": max-time-in-queue = 100 is not a duration (a number with a unit ms, s, m, h or d, e.g. 60s)")]
    [InlineData("max-time-in-queue = 31d", "bounce-profile \"fast\": max-time-in-queue = 31d is out of range 1s..30d")]
    [InlineData("max-time-in-queue = 0s", "bounce-profile \"fast\": max-time-in-queue = 0s is out of range 1s..30d")]
    [InlineData("initial-retry-interval = 2d", "bounce-profile \"fast\": initial-retry-interval = 2d is out of range 1s..1d")]
    [InlineData("initial-retry-interval = 10m, max-retry-interval = 5m", "bounce-profile \"fast\": max-retry-interval = 5m is shorter than initial-retry-interval = 10m")]
    [InlineData("retry-jitter = 0.9", "bounce-profile \"fast\": retry-jitter = 0.9 is out of range 0..0.5")]
    [InlineData("retry-jitter = lots", "bounce-profile \"fast\": retry-jitter = lots is not a number (allowed range 0..0.5)")]
    [InlineData("send-dsn = maybe", "bounce-profile \"fast\": send-dsn = maybe is not a boolean (on/off, true/false, yes/no)")]
    [InlineData("delay-warning = on", "bounce-profile \"fast\": delay-warning = on needs an interval: write delay-warning { interval = 4h }")]
    [InlineData("delay-warning = weekly", "bounce-profile \"fast\": delay-warning = weekly is neither off nor an object { interval = 4h, max-count = 1 }")]
    [InlineData("delay-warning { max-count = 2 }", "bounce-profile \"fast\": delay-warning.interval is missing")]
    [InlineData("delay-warning { interval = 10s }", "bounce-profile \"fast\": delay-warning.interval = 10s is out of range 1m..30d")]
    [InlineData("delay-warning { interval = 1h, max-count = 0 }", "bounce-profile \"fast\": delay-warning.max-count = 0 is out of range 1..100")]
    [InlineData("delay-warning { interval = 1h, every = 2 }", "bounce-profile \"fast\": unknown setting \"delay-warning.every\"")]
    [InlineData("max-retry = 3", "bounce-profile \"fast\": unknown setting \"max-retry\" (did you mean \"max-retries\"?)")]
    public void Invalid_bounce_values_are_named_precisely(string line, string expected) =>
        Assert.Equal([expected], Errors($"mtasts.bounce-profiles {{ fast {{ {line} }} }}"));

    [Fact]
    public void All_errors_are_collected()
    {
        var errors = Errors("""
            mtasts.bounce-profiles {
              default { max-retries = -5 }
              b { sned-dsn = on }
            }
            mtasts.destinations {
              default { max-concurrent-connections = 0 }
              "a.example" { max-messages-per-connection = 0, tls-support = strict }
              "b.example" { bounce-profile = missing }
            }
            """);
        Assert.Equal(6, errors.Count);
        Assert.Contains("bounce-profile \"default\": max-retries = -5 is out of range 0..10000", errors);
        Assert.Contains("bounce-profile \"b\": unknown setting \"sned-dsn\" (did you mean \"send-dsn\"?)", errors);
        Assert.Contains("destination \"default\": max-concurrent-connections = 0 is out of range 1..1000", errors);
        Assert.Contains("destination \"a.example\": max-messages-per-connection = 0 is out of range 1..1000", errors);
        Assert.Contains(errors, e => e.StartsWith("destination \"a.example\": tls-support = strict is not one of"));
        Assert.Contains("destination \"b.example\": bounce-profile = \"missing\" names no bounce profile (known: b, default)", errors);
    }

    [Fact]
    public void Duplicate_destinations_after_normalisation_are_errors()
    {
        var errors = Errors("mtasts.destinations {\n \"example.com\" {}\n \"EXAMPLE.com.\" {}\n }");
        Assert.Single(errors);
        Assert.Contains("duplicate of", errors[0]);
        Assert.Contains("case-insensitive", errors[0]);
    }

    [Theory]
    [InlineData("exa mple.com")]
    [InlineData("..example.com")]
    [InlineData("-x.example")]
    [InlineData("bücher.example")]
    public void Invalid_destination_names_are_errors(string name)
    {
        var errors = Errors(Dest(name, "mta-sts = on"));
        Assert.Equal($"destination \"{name}\": not a domain (example.com), a subdomain pattern (.example.com) or default; internationalised names must be written as A-labels (xn--...)", errors.Single());
    }

    [Fact]
    public void A_profile_that_is_not_an_object_is_an_error() =>
        Assert.Equal(["destination \"example.com\": must be an object { max-concurrent-connections = ..., ... }"],
            Errors("mtasts.destinations { \"example.com\" = 5 }"));

    [Fact]
    public void A_section_that_is_not_an_object_is_an_error() =>
        Assert.StartsWith("mtasts.destinations must be an object", Errors("mtasts.destinations = 5").Single());

    [Fact]
    public void Syntax_errors_are_returned_not_thrown()
    {
        Assert.StartsWith("HOCON syntax error: Unresolved substitution", Errors("mtasts.destinations { default { mta-sts = ${nope} } }").Single());
        // Akka's parser refuses a comma after '}' inside an object; the sample file separates profiles by new lines.
        Assert.StartsWith("HOCON syntax error", Errors("mtasts.destinations { a {}, b {} }").Single());
    }

    [Fact]
    public void Quoted_keys_with_dots_stay_one_name()
    {
        var c = Ok("""
            mtasts.destinations {
              "mail.example.com" { max-concurrent-connections = 3 }
              ".mail.example.com" { max-concurrent-connections = 4 }
            }
            """);
        Assert.Equal(3, c.Profiles.Resolve("mail.example.com").MaxConcurrentConnections);
        Assert.Equal(4, c.Profiles.Resolve("x.mail.example.com").MaxConcurrentConnections);
        Assert.Equal(500, c.Profiles.Resolve("example.com").MaxConcurrentConnections);
    }

    [Fact]
    public void Loads_from_a_config_object()
    {
        var config = ConfigurationFactory.ParseString("""mtasts { hostname = x, destinations { default { mta-sts = on } } }""");
        var r = DestinationConfigLoader.Load(config);
        Assert.True(r.IsValid);
        Assert.True(r.Config!.Profiles.Default.MtaSts);
    }

    [Fact]
    public void Smtp_route_may_be_empty_or_a_list()
    {
        Assert.Empty(Ok(Dest("example.com", "smtp-route = []")).Profiles.Resolve("example.com").SmtpRoute);
        Assert.Empty(Ok(Dest("example.com", "smtp-route = \"\"")).Profiles.Resolve("example.com").SmtpRoute);
        Assert.Equal(2, Ok(Dest("example.com", "smtp-route = [\"a.example\", \"b.example:26\"]")).Profiles.Resolve("example.com").SmtpRoute.Count);
    }

    [Fact]
    public void Empty_client_certificate_and_source_mean_none()
    {
        var p = Ok(Dest("example.com", "client-certificate = \"\", source-address = \"\"")).Profiles.Resolve("example.com");
        Assert.Null(p.ClientCertificate);
        Assert.Null(p.SourceAddress);
        Assert.Equal("vg-1", Ok(Dest("example.com", "source-address = vg-1")).Profiles.Resolve("example.com").SourceAddress);
    }

    [Theory]
    [InlineData("500ms", 0, 0, 0, 0, 500)]
    [InlineData("60s", 0, 0, 0, 60, 0)]
    [InlineData("5m", 0, 0, 5, 0, 0)]
    [InlineData("72h", 0, 72, 0, 0, 0)]
    [InlineData("3d", 3, 0, 0, 0, 0)]
    [InlineData("1.5h", 0, 1, 30, 0, 0)]
    [InlineData("10 minutes", 0, 0, 10, 0, 0)]
    public void Durations(string text, int d, int h, int m, int s, int ms)
    {
        Assert.True(MtaSts.Actors.Configuration.ConfigSection.TryParseDuration(text, out var t));
        Assert.Equal(new TimeSpan(d, h, m, s, ms), t);
    }

    [Theory]
    [InlineData("60")]
    [InlineData("s")]
    [InlineData("60x")]
    [InlineData("-5s")]
    [InlineData("")]
    public void Bad_durations(string text) => Assert.False(MtaSts.Actors.Configuration.ConfigSection.TryParseDuration(text, out _));
}
