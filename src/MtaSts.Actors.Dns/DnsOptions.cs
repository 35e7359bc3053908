using System.Net;
using MtaSts.Actors.Configuration;

namespace MtaSts.Actors.Dns;

/// <summary>The <c>mtasts.dns</c> section: the resolver's name servers, timeout and retries (every default is the one
/// written in <see cref="DnsResolverOptions"/>).</summary>
public sealed record DnsOptions
{
    public DnsResolverOptions Resolver { get; init; } = new();

    /// <summary>Reads <c>mtasts.dns { servers, timeout, retries }</c>; every bad value is an error naming its key.</summary>
    public static DnsOptions Read(ConfigSection s)
    {
        var d = new DnsResolverOptions();
        return new DnsOptions
        {
            Resolver = d with
            {
                NameServers = s.Get("servers", d.NameServers, _ => s.List("servers").Select(Server).ToArray()),
                Timeout = s.Duration("timeout", d.Timeout),
                Retries = s.Int("retries", d.Retries, 0, 10),
            },
        };
    }

    /// <summary><c>address:port</c>, <c>[v6]:port</c>, or an address alone (port 53; a bare IPv6 address has colons).</summary>
    private static IPEndPoint Server(string s) =>
        s.Count(c => c == ':') > 1 && !s.Contains("]:") ? new IPEndPoint(IPAddress.Parse(s), 53) : ConfigSection.ParseEndPoint(s, 53);
}
