using System.Net;

namespace MtaSts.Actors.LoadTests.Receivers;

/// <summary>Where the target delivers to. Every destination domain of a scenario maps to <see cref="Endpoint"/>.</summary>
public interface IReceiver : IAsyncDisposable
{
    string Name { get; }
    IPEndPoint Endpoint { get; }
    Task StartAsync(CancellationToken ct);
    Task StopAsync();
    bool Running { get; }
    /// <summary>Messages taken with a 250 after DATA since start (all runs sharing this receiver).</summary>
    long MessagesReceived { get; }
    ReceiverSummary Summary();
}

public sealed record ReceiverSummary(
    string Name,
    long Sessions,
    long Messages,
    long Rejected,
    long MaxConcurrentSessions,
    double MeanMessagesPerConnection,
    long MaxMessagesPerConnection,
    int DomainsSeen,
    IReadOnlyList<DomainSummary> TopDomains,
    string? Note,
    long TlsSessions = 0,
    long TlsMessages = 0,
    TlsHandshakeCounts? Handshakes = null);

/// <summary>STARTTLS handshakes at the receiver, told apart by <see cref="MtaSts.Actors.TestInfra.Net.TlsHelloProbe"/>: Full = a certificate was sent
/// (and checked by the relay); Resumed = an earlier session was resumed; Offered = the relay's ClientHello carried a
/// ticket/PSK (tried to resume, accepted or not); Tls13 = negotiated TLS 1.3; Unparsed = hellos the probe could not read.</summary>
public sealed record TlsHandshakeCounts(long Full, long Resumed, long Offered, long Tls13, long Unparsed)
{
    public string Describe() => $"{Full} full / {Resumed} resumed (resumption offered in {Offered}; TLS 1.3: {Tls13}{(Unparsed > 0 ? $"; hellos not parsed: {Unparsed}" : "")})";
}

public sealed record DomainSummary(string Domain, long Messages, long MaxConcurrentSessions);
