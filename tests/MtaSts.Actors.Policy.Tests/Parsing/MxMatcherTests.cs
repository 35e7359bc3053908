using MtaSts.Actors.Policy.Parsing;

namespace MtaSts.Actors.Policy.Tests.Parsing;

/// <summary>RFC 8461 §4.1 MX matching vectors (research §3c, X01–X23). X20/X21 (what testing/none do with
/// a mismatch) are enforcement decisions and tested there; here only the match results they rely on.</summary>
public sealed class MxMatcherTests
{
    [Theory]
    [InlineData("X01", "*.example.com", "mail.example.com", true)]
    [InlineData("X02", "*.example.com", "example.com", false)]
    [InlineData("X03", "*.example.com", "foo.bar.example.com", false)]
    [InlineData("X04-literal", "a.example", "a.example", true)]
    [InlineData("X04-wildcard", "*.b.example", "sub.b.example", true)]
    [InlineData("X04-wildcard-base", "*.b.example", "b.example", false)]
    [InlineData("X04-wildcard-two-deep", "*.b.example", "sub.sub.b.example", false)]
    [InlineData("X04-other", "a.example", "other", false)]
    [InlineData("X05", "example.org", "example.org.", true)]
    [InlineData("X06", "a.b.", "a.b", true)]
    [InlineData("X07-lower-pattern", "ñaca.com", "Ñaca.com", true)]
    [InlineData("X07-upper-pattern", "Ñaca.com", "ñaca.com", true)]
    [InlineData("X08", "*.com", "abc.com", true)]
    [InlineData("X09-double-wildcard", "*.*.com", "x.abc.com", false)]
    [InlineData("X09-inner-wildcard", "abc.*.com", "abc.def.com", false)]
    [InlineData("X10", ".aa.b.cc.com", "zz.aa.b.cc.com", false)]
    [InlineData("X11", "*.example.org", "without-dots", false)]
    [InlineData("X14-u-label-host", "x.xn--aca-6ma.com", "x.ñaca.com", true)]
    [InlineData("X14-ascii-lookalike", "x.xn--aca-6ma.com", "x.naca.com", false)]
    [InlineData("X15-wildcard-u-label-pattern", "*.מייל.קום", "mx.xn--eebajf.xn--9dbq2a", true)]
    [InlineData("X15-upper-u-label-pattern", "MAIL.מייל.קום", "mail.xn--eebajf.xn--9dbq2a", true)]
    [InlineData("X16", "*.mx.microsoft", "icewolf-li.h-v1.mx.microsoft", false)]
    [InlineData("X17", "*.mail.icloud.com", "mx01.mail.icloud.com.:587", true)]
    [InlineData("X22-implicit-mx", "example.com", "example.com", true)]
    [InlineData("X23", "MAIL.example.com", "mail.example.com", true)]
    [InlineData("X-host-upper", "*.example.com", "MAIL.EXAMPLE.COM", true)]
    [InlineData("X-host-trailing-dot-wildcard", "*.example.com", "mail.example.com.", true)]
    [InlineData("X-host-two-trailing-dots", "*.example.com", "mail.example.com..", false)]
    [InlineData("X-host-empty-first-label", "*.example.com", ".example.com", false)]
    [InlineData("X-host-suffix-not-label", "*.example.com", "mailexample.com", false)]
    [InlineData("X-literal-is-not-suffix", "example.com", "mail.example.com", false)]
    [InlineData("X-port-on-literal", "mail.example.com", "mail.example.com:25", true)]
    [InlineData("X-non-numeric-port-kept", "mail.example.com", "mail.example.com:smtp", false)]
    [InlineData("X-empty-host", "*.example.com", "", false)]
    public void Matches(string vector, string pattern, string host, bool expected) =>
        Assert.True(expected == MxMatcher.Matches(new MxPattern(pattern), host), $"{vector}: {pattern} vs {host}, expected {expected}");

    [Theory]
    [InlineData("X04-a", "a.example", true)]
    [InlineData("X04-sub", "sub.b.example", true)]
    [InlineData("X04-b", "b.example", false)]
    [InlineData("X04-subsub", "sub.sub.b.example", false)]
    [InlineData("X04-other", "other", false)]
    public void X04_matches_any_of_the_policy_patterns(string vector, string host, bool expected) =>
        Assert.True(expected == MxMatcher.MatchesAny(Policy(StsMode.Enforce, "a.example", "*.b.example"), host), vector);

    [Fact]
    public void X12_literal_and_one_level_wildcard_do_not_cover_two_levels() =>
        Assert.False(MxMatcher.MatchesAny(Policy(StsMode.Enforce, "special.example.org", "*.example.org"), "mx0.special.example.org"));

    [Fact]
    public void X13_wildcard_on_the_right_parent_matches() =>
        Assert.True(MxMatcher.MatchesAny(Policy(StsMode.Enforce, "*.special.example.org", "*.example.org"), "mx0.special.example.org"));

    [Fact]
    public void X18_enforce_keeps_only_matching_mx_in_order()
    {
        var eligible = MxMatcher.Eligible(Policy(StsMode.Enforce, "*.mail.icloud.com"),
            ["mx01.mail.icloud.com.", "backup.example.net.", "mx02.mail.icloud.com."]);

        Assert.Equal(["mx01.mail.icloud.com.", "mx02.mail.icloud.com."], eligible);
    }

    [Fact]
    public void X19_no_mx_matches_gives_empty_set()
    {
        var eligible = MxMatcher.Eligible(Policy(StsMode.Enforce, "*.mx.cloudflare.net"),
            ["mx01.mail.icloud.com.", "mx02.mail.icloud.com."]);

        Assert.Empty(eligible);
    }

    [Fact]
    public void X21_mode_none_policy_without_mx_matches_nothing()
    {
        var policy = StsPolicyParser.Parse("version: STSv1\nmode: none\nmax_age: 86400\n").Value!;

        Assert.Equal(StsMode.None, policy.Mode);
        Assert.False(MxMatcher.MatchesAny(policy, "mail.example.com"));
    }

    [Theory]
    [InlineData("X01-parsed", "*.Example.COM", "mail.example.com", true)]
    [InlineData("X03-parsed", "*.example.com", "foo.bar.example.com", false)]
    [InlineData("X05-parsed", "example.org.", "EXAMPLE.org.", true)]
    [InlineData("X23-parsed", "MAIL.example.com", "mail.example.com", true)]
    public void Parsed_patterns_match_like_constructed_ones(string vector, string mx, string host, bool expected)
    {
        var r = StsPolicyParser.Parse($"version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 60\n");

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        Assert.True(expected == MxMatcher.MatchesAny(r.Value!, host), vector);
    }

    private static StsPolicy Policy(StsMode mode, params string[] mx) =>
        new(mode, mx.Select(m => new MxPattern(m)).ToList(), 86400, []);
}
