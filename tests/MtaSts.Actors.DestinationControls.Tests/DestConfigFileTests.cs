using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.DestinationControls.Tests;

/// <summary>destconfig export/import: the writer spells out every setting so that reading its text back gives the same
/// effective profiles; an imported file holds only the destination sections and its errors carry their line.</summary>
public sealed class DestConfigFileTests
{
    private static DestinationConfig Shipped()
    {
        var r = DestinationConfigLoader.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "destinations.conf")));
        Assert.True(r.IsValid, string.Join("; ", r.Errors));
        return r.Config!;
    }

    private static void AssertSame(DestinationConfig a, DestinationConfig b)
    {
        Assert.Equal(a.Profiles.Default, b.Profiles.Default);
        Assert.Equal(a.Profiles.Profiles.OrderBy(p => p.Destination), b.Profiles.Profiles.OrderBy(p => p.Destination));
        Assert.Equal(a.BounceProfiles.OrderBy(kv => kv.Key), b.BounceProfiles.OrderBy(kv => kv.Key));
    }

    [Fact]
    public void The_shipped_profiles_survive_export_and_import()
    {
        var shipped = Shipped();
        var text = DestinationConfigWriter.Write(shipped, "exported\nfor a test");
        Assert.StartsWith("# exported\n# for a test\nmtasts {\n", text);
        var back = DestConfigFile.Validate(text);
        Assert.True(back.IsValid, string.Join("; ", back.Errors) + "\n" + text);
        AssertSame(shipped, back.Config!);
        Assert.Equal(text[text.IndexOf("mtasts", StringComparison.Ordinal)..], DestinationConfigWriter.Write(back.Config!));
    }

    [Fact]
    public void Every_kind_of_setting_round_trips()
    {
        var bounce = new BounceProfile
        {
            Name = "slow\"one", MaxRetries = 0, MaxTimeInQueue = TimeSpan.FromMinutes(90), InitialRetryInterval = TimeSpan.FromMilliseconds(1500),
            MaxRetryInterval = TimeSpan.FromDays(1), RetryJitter = 0.33, SendDsn = false, DelayWarning = new DelayWarning(TimeSpan.FromHours(4), 3),
        };
        var profile = new DestinationProfile
        {
            Destination = ".sub.example", IpPreference = IpPreference.RequireV6, MaxConcurrentConnections = 1, MaxMessagesPerConnection = 1000,
            MaxRecipientsPerTransaction = 7, RecipientLimit = new RecipientLimit(0, 60), LimitScope = LimitScope.PerGatewayHostname,
            TlsSupport = TlsSupport.RequiredVerifyHostedDomains, ClientCertificate = "/etc/certs/a b.pem", DaneSupport = DaneSupport.Mandatory,
            MtaSts = true, BounceVerification = true, BounceProfile = bounce.Name, SourceAddress = "2001:db8::1",
            SmtpRoute = [new SmtpRouteHost("relay.example", 2525), new SmtpRouteHost("192.0.2.1"), new SmtpRouteHost("2001:db8::25", 587)],
        };
        var config = new DestinationConfig(new ProfileSet([new DestinationProfile { TlsSupport = TlsSupport.None }, profile]), [bounce]);
        var back = DestConfigFile.Validate(DestinationConfigWriter.Write(config));
        Assert.True(back.IsValid, string.Join("; ", back.Errors));
        AssertSame(config, back.Config!);
    }

    [Fact]
    public void The_summary_line_shows_bounce_verification()
    {
        var on = DestinationConfigWriter.Summary(new DestinationProfile { Destination = "tagged.example", BounceVerification = true });
        var off = DestinationConfigWriter.Summary(new DestinationProfile { Destination = "plain.example" });
        Assert.StartsWith("tagged.example ", on);
        Assert.Contains("bounce-verification on ", on);
        Assert.Contains("bounce-verification off ", off);
        Assert.Contains("mta-sts ", on);
    }

    [Fact]
    public void Errors_name_their_line_and_setting_and_foreign_sections_are_refused()
    {
        var r = DestConfigFile.Validate("""
            mtasts {
              destinations {
                default { tls-support = none }
                "b.example" {
                  mta-sts = on
                  max-concurrent-connections = 0
                  bounce-profile = nowhere
                }
              }
            }
            """);
        Assert.False(r.IsValid);
        Assert.Contains("line 6: destination \"b.example\": max-concurrent-connections = 0 is out of range 1..1000", r.Errors);
        Assert.Contains(r.Errors, e => e.StartsWith("line 7: destination \"b.example\": bounce-profile = \"nowhere\" names no bounce profile", StringComparison.Ordinal));

        var foreign = DestConfigFile.Validate("mtasts.destinations.default.mta-sts = off\nmtasts.listener.endpoints = [\"0.0.0.0:25\"]\nakka.loglevel = DEBUG\n");
        Assert.Contains("line 2: \"mtasts.listener\" does not belong in a destconfig file (only mtasts.destinations and mtasts.bounce-profiles)", foreign.Errors);
        Assert.Contains("line 3: \"akka\" does not belong in a destconfig file (only mtasts.destinations and mtasts.bounce-profiles)", foreign.Errors);

        Assert.Contains(DestConfigFile.Validate("mtasts.bounce-profiles.default.max-retries = 3").Errors,
            e => e.StartsWith("mtasts.destinations is missing", StringComparison.Ordinal));
        Assert.StartsWith("line 1: HOCON substitutions", Assert.Single(DestConfigFile.Validate("mtasts.destinations.default.source-address = ${X}").Errors));
    }
}
