using System.Net;
using System.Net.Sockets;

namespace MtaSts.Actors.Smtp.Intake;

/// <summary>
/// The listener could not bind or listen on one of its endpoints: typically the port is taken by another gateway or
/// MTA. The message names the endpoint and the reason, for the operator; the socket error is the inner exception.
/// </summary>
public sealed class ListenerBindException(IPEndPoint endpoint, SocketException inner)
    : Exception($"SMTP listener cannot bind {endpoint}: {Reason(inner.SocketErrorCode, inner.Message)}", inner)
{
    public IPEndPoint Endpoint { get; } = endpoint;
    public SocketError SocketError { get; } = inner.SocketErrorCode;

    private static string Reason(SocketError error, string message) => error switch
    {
        SocketError.AddressAlreadyInUse => "address already in use (another gateway or MTA is listening on this port)",
        SocketError.AccessDenied => "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
        SocketError.AddressNotAvailable => "address not available (not an address of this host)",
        _ => message,
    };
}
