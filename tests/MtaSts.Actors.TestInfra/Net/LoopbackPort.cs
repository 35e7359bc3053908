using System.Net;
using System.Net.Sockets;

namespace MtaSts.Actors.TestInfra.Net;

/// <summary>Free TCP ports on 127.0.0.1 for daemons and gateways started by tests and load tests.</summary>
public static class LoopbackPort
{
    /// <summary>Asks the kernel for a free loopback port (the listener is closed again right away, so a port that
    /// nothing listens on is also what a "refused connection" test needs).</summary>
    public static int Free()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
