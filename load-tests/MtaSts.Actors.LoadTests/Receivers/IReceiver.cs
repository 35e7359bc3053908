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
    long TlsMessages = 0);

public sealed record DomainSummary(string Domain, long Messages, long MaxConcurrentSessions);
