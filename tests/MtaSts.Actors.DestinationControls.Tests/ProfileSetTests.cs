using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.DestinationControls.Tests;

public sealed class ProfileSetTests
{
    private static DestinationProfile P(string name, int conns) => new() { Destination = name, MaxConcurrentConnections = conns };

    private static readonly ProfileSet Set = new([
        P("default", 7), P("example.com", 1), P(".example.com", 2), P(".a.example.com", 3), P(".com", 4), P("b.a.example.com", 5),
    ]);

    [Theory]
    [InlineData("example.com", 1)]             // exact beats .com
    [InlineData("a.example.com", 2)]           // .a.example.com does not match a.example.com itself
    [InlineData("x.a.example.com", 3)]         // longest suffix wins
    [InlineData("y.x.a.example.com", 3)]
    [InlineData("b.a.example.com", 5)]         // exact beats every suffix
    [InlineData("c.example.com", 2)]
    [InlineData("other.com", 4)]
    [InlineData("com", 7)]                     // ".com" does not match "com"
    [InlineData("example.org", 7)]
    [InlineData("EXAMPLE.COM", 1)]             // RFC 4343 case-insensitive
    [InlineData("Example.Com.", 1)]            // trailing dot ignored
    [InlineData("C.Example.COM.", 2)]
    [InlineData("", 7)]
    [InlineData("localhost", 7)]
    public void Most_specific_profile_wins(string domain, int expected) =>
        Assert.Equal(expected, Set.Resolve(domain).MaxConcurrentConnections);

    [Fact]
    public void Suffix_pattern_needs_a_label_boundary()
    {
        var set = new ProfileSet([P(".example.com", 2)]);
        Assert.Equal(500, set.Resolve("badexample.com").MaxConcurrentConnections);
        Assert.Equal(2, set.Resolve("a.example.com").MaxConcurrentConnections);
        Assert.Equal(500, set.Resolve("example.com").MaxConcurrentConnections);
    }

    [Fact]
    public void Without_configured_default_the_vendor_defaults_apply()
    {
        var set = new ProfileSet([P("example.com", 1)]);
        Assert.Same(DestinationProfile.Default, set.Default);
        Assert.Equal(500, set.Resolve("example.net").MaxConcurrentConnections);
    }

    [Fact]
    public void Names_are_normalised_when_stored()
    {
        var set = new ProfileSet([P("Example.COM.", 1)]);
        Assert.Equal("example.com", set.Resolve("example.com").Destination);
        Assert.NotNull(set.Find("EXAMPLE.com"));
        Assert.Null(set.Find(".example.com"));
        Assert.Equal("default", set.Find("default")!.Destination);
    }

    [Fact]
    public void Duplicates_after_normalisation_are_rejected() =>
        Assert.Throws<ArgumentException>(() => new ProfileSet([P("example.com", 1), P("EXAMPLE.com.", 2)]));

    [Fact]
    public void Invalid_names_are_rejected() =>
        Assert.Throws<ArgumentException>(() => new ProfileSet([P("exa mple.com", 1)]));

    [Fact]
    public void Profiles_lists_default_first_then_by_name()
    {
        Assert.Equal(["default", ".a.example.com", ".com", ".example.com", "b.a.example.com", "example.com"],
            Set.Profiles.Select(p => p.Destination));
    }

    [Fact]
    public void Vendor_defaults()
    {
        var d = DestinationProfile.Default;
        Assert.Equal("default", d.Destination);
        Assert.True(d.IsDefault);
        Assert.Equal(IpPreference.PreferV4, d.IpPreference);
        Assert.Equal(500, d.MaxConcurrentConnections);
        Assert.Equal(50, d.MaxMessagesPerConnection);
        Assert.Equal(100, d.MaxRecipientsPerTransaction);
        Assert.Null(d.RecipientLimit);
        Assert.Equal(LimitScope.SystemWide, d.LimitScope);
        Assert.Equal(LimitType.WholeDomain, d.LimitType);
        Assert.Equal(TlsSupport.Preferred, d.TlsSupport);
        Assert.Null(d.ClientCertificate);
        Assert.Equal(DaneSupport.None, d.DaneSupport);
        Assert.True(d.MtaSts); // ours: on (the vendor's default is off; measured cost ≈ 1 %)
        Assert.False(d.BounceVerification);
        Assert.Equal("default", d.BounceProfile);
        Assert.Null(d.SourceAddress);
        Assert.Empty(d.SmtpRoute);

        var b = BounceProfile.Default;
        Assert.Equal(100, b.MaxRetries);
        Assert.Equal(TimeSpan.FromHours(72), b.MaxTimeInQueue);
        Assert.Equal(TimeSpan.FromSeconds(60), b.InitialRetryInterval);
        Assert.Equal(TimeSpan.FromSeconds(3600), b.MaxRetryInterval);
        Assert.True(b.SendDsn);
        Assert.Null(b.DelayWarning);
    }

    [Fact]
    public void Smtp_route_disables_mta_sts_and_dane_enforcement()
    {
        var p = new DestinationProfile { MtaSts = true, DaneSupport = DaneSupport.Mandatory };
        Assert.True(p.EnforcesMtaSts);
        Assert.Equal(DaneSupport.Mandatory, p.EffectiveDane);
        var routed = p with { SmtpRoute = [new SmtpRouteHost("relay.example", 2525)] };
        Assert.False(routed.EnforcesMtaSts);
        Assert.Equal(DaneSupport.None, routed.EffectiveDane);
        Assert.True(routed.HasSmtpRoute);
    }

    [Fact]
    public void Profiles_compare_routes_by_content()
    {
        var a = new DestinationProfile { SmtpRoute = [new SmtpRouteHost("a.example")] };
        var b = new DestinationProfile { SmtpRoute = [new SmtpRouteHost("a.example")] };
        Assert.Equal(a, b);
        Assert.NotEqual(a, b with { SmtpRoute = [new SmtpRouteHost("a.example", 26)] });
        Assert.NotEqual(a, a with { MaxConcurrentConnections = 1 });
    }
}

public sealed class SmtpRouteHostTests
{
    [Theory]
    [InlineData("relay.example", "relay.example", 25)]
    [InlineData("Relay.Example.", "relay.example", 25)]
    [InlineData("relay.example:2525", "relay.example", 2525)]
    [InlineData(" 192.0.2.1:26 ", "192.0.2.1", 26)]
    [InlineData("[192.0.2.1]", "192.0.2.1", 25)]
    [InlineData("[192.0.2.1]:2525", "192.0.2.1", 2525)]
    [InlineData("[::1]:2525", "::1", 2525)]
    [InlineData("[IPv6:2001:db8::1]", "2001:db8::1", 25)]
    public void Parses(string text, string host, int port)
    {
        Assert.True(SmtpRouteHost.TryParse(text, out var r, out var err), err);
        Assert.Equal(new SmtpRouteHost(host, port), r);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("relay.example:0", "out of range 1..65535")]
    [InlineData("relay.example:65536", "out of range")]
    [InlineData("relay.example:x", "out of range")]
    [InlineData("::1", "brackets")]
    [InlineData("[::1", "missing ']'")]
    [InlineData("[nope]", "not an IP address")]
    [InlineData("bad host", "not a valid host name")]
    [InlineData("-bad.example", "not a valid host name")]
    [InlineData("[192.0.2.1]x", "after ']'")]
    public void Rejects(string text, string why)
    {
        Assert.False(SmtpRouteHost.TryParse(text, out _, out var err));
        Assert.Contains(why, err);
    }

    [Fact]
    public void Formats_round_trip()
    {
        Assert.Equal("relay.example", new SmtpRouteHost("relay.example").ToString());
        Assert.Equal("[192.0.2.1]:2525", new SmtpRouteHost("192.0.2.1", 2525).ToString());
        Assert.Equal("[::1]", new SmtpRouteHost("::1").ToString());
    }

    [Theory]
    [InlineData("example.com", true)]
    [InlineData("example.com.", true)]
    [InlineData("a-b.example", true)]
    [InlineData("_mta-sts.example", true)]
    [InlineData("xn--bcher-kva.example", true)]
    [InlineData("a..b", false)]
    [InlineData("-a.example", false)]
    [InlineData("a-.example", false)]
    [InlineData("", false)]
    [InlineData(".", false)]
    [InlineData("bücher.example", false)]
    public void Host_name_validation(string name, bool valid) => Assert.Equal(valid, DomainNames.IsValidHostName(name));

    [Fact]
    public void Host_name_label_and_total_lengths()
    {
        Assert.True(DomainNames.IsValidHostName(new string('a', 63) + ".example"));
        Assert.False(DomainNames.IsValidHostName(new string('a', 64) + ".example"));
        var long253 = string.Join('.', Enumerable.Repeat(new string('a', 49), 5)) + ".abc"; // 5*50 + 3 = 253
        Assert.Equal(253, long253.Length);
        Assert.True(DomainNames.IsValidHostName(long253));
        Assert.False(DomainNames.IsValidHostName(long253 + "d"));
    }
}
