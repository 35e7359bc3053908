namespace MtaSts.Actors.Policy.Tests.Parsing;

public sealed class ModelTests
{
    [Theory]
    [InlineData(31_557_601L, 31_557_600L)]
    [InlineData(9_999_999_999L, 31_557_600L)]
    [InlineData(-5L, 0L)]
    [InlineData(86_400L, 86_400L)]
    public void E7282_StsPolicy_clamps_max_age_on_construction_and_with(long given, long expected)
    {
        var p = new StsPolicy(StsMode.Testing, [new MxPattern("a.example")], given, []);
        Assert.Equal(expected, p.MaxAgeSeconds);
        Assert.Equal(expected, (p with { MaxAgeSeconds = 1 } with { MaxAgeSeconds = given }).MaxAgeSeconds);
    }

    [Fact]
    public void StsPolicy_equality_compares_list_contents()
    {
        var a = new StsPolicy(StsMode.Enforce, [new MxPattern("a.example"), new MxPattern("*.b.example")], 60, [new("k", "v")]);
        var b = new StsPolicy(StsMode.Enforce, [new MxPattern("a.example"), new MxPattern("*.b.example")], 60, [new("k", "v")]);
        var c = b with { Mx = [new MxPattern("*.b.example"), new MxPattern("a.example")] };

        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void StsTxtRecord_equality_compares_extensions()
    {
        Assert.Equal(new StsTxtRecord("1", [new("e", "x")]), new StsTxtRecord("1", [new("e", "x")]));
        Assert.NotEqual(new StsTxtRecord("1", [new("e", "x")]), new StsTxtRecord("1", []));
    }

    [Theory]
    [InlineData(StsMode.Enforce, "enforce")]
    [InlineData(StsMode.Testing, "testing")]
    [InlineData(StsMode.None, "none")]
    public void Mode_wire_string(StsMode mode, string expected) => Assert.Equal(expected, mode.ToWireString());

    [Fact]
    public void MxPattern_wildcard_flag()
    {
        Assert.True(new MxPattern("*.example.com").IsWildcard);
        Assert.False(new MxPattern("mail.example.com").IsWildcard);
    }
}
