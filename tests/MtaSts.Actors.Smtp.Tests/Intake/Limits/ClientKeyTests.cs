using System.Net;
using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Tests.Intake.Limits;

public sealed class ClientKeyTests
{
    private static ClientKey K(string a) => ClientKey.From(IPAddress.Parse(a));

    [Fact]
    public void Ipv4_is_counted_per_address()
    {
        Assert.Equal(K("192.0.2.1"), K("192.0.2.1"));
        Assert.NotEqual(K("192.0.2.1"), K("192.0.2.2"));
        Assert.Equal("192.0.2.1", K("192.0.2.1").ToString());
        Assert.False(K("192.0.2.1").IsIPv6Prefix);
    }

    [Fact]
    public void Ipv6_is_counted_per_64()
    {
        Assert.Equal(K("2001:db8:1:2::1"), K("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        Assert.NotEqual(K("2001:db8:1:2::1"), K("2001:db8:1:3::1"));
        Assert.Equal("2001:db8:1:2::/64", K("2001:db8:1:2:abcd::7").ToString());
        Assert.True(K("2001:db8::1").IsIPv6Prefix);
    }

    [Fact]
    public void Ipv4_mapped_ipv6_is_the_ipv4_address()
    {
        Assert.Equal(K("192.0.2.1"), K("::ffff:192.0.2.1"));
        Assert.NotEqual(K("192.0.2.1"), K("::ffff:192.0.2.2"));
        Assert.Equal("192.0.2.1", K("::ffff:192.0.2.1").ToString());
        // An IPv4 address and an IPv6 prefix with the same bits are different keys.
        Assert.NotEqual(K("0.0.0.1"), K("0:0:0:1::"));
    }

    [Fact]
    public void Scope_id_is_ignored()
    {
        Assert.Equal(K("fe80::1%2"), K("fe80::2%3"));
    }
}
