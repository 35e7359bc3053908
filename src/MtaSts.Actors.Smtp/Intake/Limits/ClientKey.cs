using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MtaSts.Actors.Smtp.Intake.Limits;

/// <summary>
/// The unit that client limits count by: the address for IPv4, the /64 prefix for IPv6 (one end site usually holds a
/// whole /64, so per-address counting would let it open 2^64 "clients"). IPv4-mapped IPv6 (::ffff:a.b.c.d, what a
/// dual-stack socket reports) counts as the IPv4 address. Postfix ≥ 3.8 aggregates the same way for anvil
/// (smtpd_client_ipv4_prefix_length = 32, smtpd_client_ipv6_prefix_length, default /84); here /64 is fixed.
/// </summary>
public readonly record struct ClientKey
{
    private readonly ulong _bits;   // IPv4: the 32-bit address; IPv6: the upper 64 bits (network byte order)
    private readonly bool _ipv6;

    private ClientKey(ulong bits, bool ipv6) { _bits = bits; _ipv6 = ipv6; }

    /// <summary>True for an IPv6 /64 prefix, false for an IPv4 address.</summary>
    public bool IsIPv6Prefix => _ipv6;

    /// <summary>The key of <paramref name="address"/>: IPv4 (mapped or not) → the address; IPv6 → its /64 (scope id dropped).</summary>
    public static ClientKey From(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        Span<byte> b = stackalloc byte[16];
        if (!address.TryWriteBytes(b, out var n)) throw new ArgumentException("unreadable address", nameof(address));
        return address.AddressFamily switch
        {
            AddressFamily.InterNetwork when n == 4 => new ClientKey(BinaryPrimitives.ReadUInt32BigEndian(b), false),
            AddressFamily.InterNetworkV6 when n == 16 => new ClientKey(BinaryPrimitives.ReadUInt64BigEndian(b), true),
            _ => throw new ArgumentException($"not an IP address: {address.AddressFamily}", nameof(address)),
        };
    }

    /// <summary>For logs and replies: "192.0.2.1" or "2001:db8:1:2::/64".</summary>
    public override string ToString()
    {
        Span<byte> b = stackalloc byte[16];
        if (!_ipv6)
        {
            BinaryPrimitives.WriteUInt32BigEndian(b, (uint)_bits);
            return new IPAddress(b[..4]).ToString();
        }
        b.Clear();
        BinaryPrimitives.WriteUInt64BigEndian(b, _bits);
        return new IPAddress(b) + "/64";
    }
}
