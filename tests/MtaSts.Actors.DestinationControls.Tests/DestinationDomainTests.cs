using MtaSts.Actors.Dns;

namespace MtaSts.Actors.DestinationControls.Tests;

/// <summary>The one key of a destination: lower-case A-labels, no trailing dot, validated.</summary>
public sealed class DestinationDomainTests
{
    [Theory]
    [InlineData("bücher.example", "xn--bcher-kva.example")]          // U-label → A-label
    [InlineData("xn--bcher-kva.example", "xn--bcher-kva.example")]   // A-label kept
    [InlineData("XN--BCHER-KVA.Example", "xn--bcher-kva.example")]   // case
    [InlineData("BÜCHER.example", "xn--bcher-kva.example")]          // upper-case U-label
    [InlineData("Example.COM", "example.com")]
    [InlineData("example.com.", "example.com")]                      // trailing root dot
    [InlineData("  example.com  ", "example.com")]
    [InlineData("mail_relay.example.com", "mail_relay.example.com")] // underscores seen in the wild
    [InlineData("[192.0.2.1]", "[192.0.2.1]")]                       // address literal
    [InlineData("[IPv6:2001:DB8::1]", "[ipv6:2001:db8::1]")]
    public void Normalises_once(string text, string name)
    {
        Assert.True(DestinationDomain.TryParse(text, out var d, out var error), error);
        Assert.Equal(name, d.Name);
        Assert.Equal(name, d.ToString());
    }

    [Fact]
    public void The_U_label_and_the_A_label_of_a_domain_are_the_same_key()
    {
        var u = DestinationDomain.Parse("bücher.example.");
        var a = DestinationDomain.Parse("XN--BCHER-KVA.EXAMPLE");
        Assert.Equal(u, a);
        Assert.True(u == a);
        Assert.Equal(u.GetHashCode(), a.GetHashCode());
        Assert.Equal("bücher.example", a.Unicode);
        Assert.Single(new HashSet<DestinationDomain> { u, a });
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData(".", "empty")]
    [InlineData("user@example.com", "mail address")]
    [InlineData("a..example", "empty label")]
    [InlineData("-a.example", "'-'")]
    [InlineData("a-.example", "'-'")]
    [InlineData("a b.example", "character ' '")]
    [InlineData("exa$mple.com", "character '$'")]
    [InlineData("[192.0.2]", "address literal")]
    [InlineData("[not-an-ip]", "address literal")]
    public void Invalid_names_are_refused_with_a_reason(string text, string reason)
    {
        Assert.False(DestinationDomain.TryParse(text, out _, out var error));
        Assert.Contains(reason, error);
        var ex = Assert.Throws<FormatException>(() => DestinationDomain.Parse(text));
        Assert.Contains(reason, ex.Message);
    }

    [Fact]
    public void Length_limits_are_refused_with_a_reason()
    {
        Assert.Contains("longer than 63", Refused(new string('a', 64) + ".example"));
        Assert.Contains("longer than 253", Refused(string.Join('.', Enumerable.Repeat(new string('a', 60), 5))));
        Assert.True(DestinationDomain.TryParse(new string('a', 63) + ".example", out _, out _));
    }

    [Theory]
    [InlineData("example.com")]
    [InlineData("mail_relay.d00042.example")]
    [InlineData("xn--bcher-kva.example")]
    [InlineData("a")]
    public void A_name_already_normalised_is_taken_as_it_is(string text)
    {
        Assert.True(DestinationDomain.TryParse(text, out var d, out var error), error);
        Assert.Same(text, d.Name); // no copy: the per-delivery policy cache lookup allocates nothing
        Assert.Same(text, DestinationDomain.KeyOf(text));
    }

    [Fact]
    public void The_shortcut_for_normalised_names_keeps_every_limit()
    {
        var label63 = new string('a', 63) + ".example";
        var name253 = string.Join('.', Enumerable.Repeat(new string('b', 49), 5)) + ".abc"; // 5 × 49 + 4 dots + 4 = 253
        Assert.Equal(253, name253.Length);
        foreach (var ok in new[] { label63, name253 })
        {
            Assert.Same(ok, DestinationDomain.Parse(ok).Name);
            Assert.Equal(ok, DestinationDomain.Parse(ok.ToUpperInvariant() + ".").Name); // the full parse agrees
        }
        Assert.Contains("longer than 253", Refused(name253 + "c"));
        Assert.Contains("longer than 63", Refused("a" + label63));
        Assert.Contains("empty label", Refused(".example.com"));
        Assert.Contains("empty label", Refused("a..example"));
        Assert.Contains("'-'", Refused("a.-b.example"));
        Assert.Contains("'-'", Refused("a.b-"));
    }

    [Fact]
    public void A_U_label_that_IDNA_refuses_is_refused()
    {
        Assert.Contains("internationalised", Refused("exa\u0000mpleé.com"));
    }

    [Fact]
    public void A_profile_governs_its_destination_however_the_recipient_spelled_it()
    {
        // Profile names are A-labels (a U-label is refused at load); a recipient may use either form.
        var set = new ProfileSet([new DestinationProfile { Destination = "xn--bcher-kva.example", MaxConcurrentConnections = 3 },
            new DestinationProfile { Destination = ".xn--bcher-kva.example", MaxConcurrentConnections = 4 }]);
        Assert.Equal(3, set.Resolve(DestinationDomain.Parse("Bücher.example.")).MaxConcurrentConnections);
        Assert.Equal(4, set.Resolve(DestinationDomain.Parse("mx.BÜCHER.example")).MaxConcurrentConnections);
    }

    private static string Refused(string text)
    {
        Assert.False(DestinationDomain.TryParse(text, out _, out var error));
        return error;
    }
}
