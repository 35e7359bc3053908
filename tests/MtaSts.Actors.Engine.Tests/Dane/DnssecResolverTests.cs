using System.Net;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Tls;
using MtaSts.Actors.TestInfra.Dns;

namespace MtaSts.Actors.Engine.Tests.Dane;

/// <summary>
/// The project's DNS stack against a real validating resolver: DnsClientResolver reports AD only for the signed zone,
/// a bogus RRset or zone is a temporary failure (SERVFAIL), and TlsaLookup/MxResolver turn that into the DANE states.
/// </summary>
public sealed class DnssecResolverTests(DaneWorld world) : IClassFixture<DaneWorld>
{
    [Fact]
    public async Task Signed_zone_answers_carry_the_ad_bit()
    {
        var dns = world.Dns.CreateClient();
        var mx = await dns.MxAsync("ee311.dane.test");
        Assert.Equal(DnsOutcome.Ok, mx.Outcome);
        Assert.True(mx.Authenticated);
        Assert.Equal("mx.ee311.dane.test", Assert.Single(mx.Records).Exchange.TrimEnd('.'));

        var a = await dns.AddressesAsync("mx.ee311.dane.test");
        Assert.Equal(DnsOutcome.Ok, a.Outcome);
        Assert.True(a.Authenticated, "A answer + validated AAAA denial");
        Assert.Equal(world.Address("ee311"), Assert.Single(a.Records));

        var tlsa = await dns.TlsaAsync("_25._tcp.mx.ee311.dane.test");
        Assert.Equal(DnsOutcome.Ok, tlsa.Outcome);
        Assert.True(tlsa.Authenticated);
        var r = Assert.Single(tlsa.Records);
        Assert.Equal((3, 1, 1), (r.Usage, r.Selector, r.MatchingType));
        Assert.Equal(DaneVerifier.AssociationData(world.Leaf, 1, 1), r.Data);

        // Validated denial of existence (NSEC) is authenticated too: "no TLSA" is a secure answer.
        var none = await dns.TlsaAsync("_25._tcp.mx.notlsa.dane.test");
        Assert.Equal(DnsOutcome.NxDomain, none.Outcome);
        Assert.True(none.Authenticated);
    }

    [Fact]
    public async Task Unsigned_zone_answers_never_carry_the_ad_bit()
    {
        var dns = world.Dns.CreateClient();
        var tlsa = await dns.TlsaAsync("_25._tcp.mx.insecure.test");
        Assert.Equal(DnsOutcome.Ok, tlsa.Outcome);
        Assert.False(tlsa.Authenticated);
        Assert.Single(tlsa.Records);
        Assert.Equal(TlsaState.Absent, (await TlsaLookup.QueryAsync(dns, "mx.insecure.test")).State);

        var mx = await new MxResolver(dns).ResolveAsync("insecure.test");
        Assert.True(mx.Ok);
        Assert.False(Assert.Single(mx.Hosts).Secure);
    }

    [Fact]
    public async Task The_authoritative_server_alone_never_sets_ad()
    {
        // AD comes from validation, not from the zone being signed: the same query straight to NSD has no AD.
        var direct = new DnsClientResolver(new DnsResolverOptions { NameServers = [world.Dns.Authoritative] });
        var tlsa = await direct.TlsaAsync("_25._tcp.mx.ee311.dane.test");
        Assert.Equal(DnsOutcome.Ok, tlsa.Outcome);
        Assert.False(tlsa.Authenticated);
    }

    [Fact]
    public async Task Bogus_answers_are_temporary_failures()
    {
        var dns = world.Dns.CreateClient();
        // One tampered RRset in a secure zone.
        var tlsa = await dns.TlsaAsync("_25._tcp.mx.bogus.dane.test");
        Assert.Equal(DnsOutcome.TempFail, tlsa.Outcome);
        Assert.Contains("SERVFAIL", tlsa.Error);
        Assert.Equal(TlsaState.TempFail, (await TlsaLookup.QueryAsync(dns, "mx.bogus.dane.test")).State);
        // The rest of that zone stays secure.
        Assert.True((await dns.AddressesAsync("mx.bogus.dane.test", true, false)).Authenticated);

        // A zone whose signatures expired: even the MX lookup fails, so delivery defers (never plaintext).
        Assert.Equal(DnsOutcome.TempFail, (await dns.MxAsync("expired.test")).Outcome);
        var mx = await new MxResolver(dns).ResolveAsync("expired.test");
        Assert.Equal(MxResolutionStatus.Transient, mx.Status);
    }

    [Fact]
    public async Task Mx_resolution_through_the_signed_zone_is_secure_and_finds_usable_tlsa()
    {
        var dns = world.Dns.CreateClient();
        var mx = await new MxResolver(dns).ResolveAsync("ee311.dane.test");
        var host = Assert.Single(mx.Hosts);
        Assert.True(host.Secure);
        Assert.Equal(25, host.Port);
        Assert.Equal(new[] { world.Address("ee311") }, host.Addresses);

        var lookup = await TlsaLookup.QueryAsync(dns, host.Name, host.Port, host.Secure);
        Assert.Equal(TlsaState.Usable, lookup.State);
        Assert.Equal(TlsaState.Unusable, (await TlsaLookup.QueryAsync(dns, "mx.pkix.dane.test")).State);
        Assert.Equal(TlsaState.Absent, (await TlsaLookup.QueryAsync(dns, "mx.notlsa.dane.test")).State);
    }

    [Fact]
    public async Task Names_outside_the_test_zones_fail_locally()
    {
        // The resolver's root is stubbed to NSD: nothing leaves the machine, the answer is a prompt failure.
        var dns = world.Dns.CreateClient();
        var a = await dns.AddressesAsync("www.example.com");
        Assert.NotEqual(DnsOutcome.Ok, a.Outcome);
        Assert.IsType<IPEndPoint>(world.Dns.Resolver);
    }
}
