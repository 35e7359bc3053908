using System.Net;
using System.Net.Sockets;

namespace MtaSts.Actors.TestInfra.Net;

/// <summary>Free TCP ports on 127.0.0.1 for daemons and gateways started by tests and load tests.</summary>
public static class LoopbackPort
{
    // Below Linux's ephemeral range (32768–60999 by default): the kernel picks the local port of every outgoing
    // connection from that range, so a port probed free there could be taken by one before the daemon binds it
    // (seen in CI: "Address already in use" for an Akka remoting port). Ports are not handed out twice per process.
    private const int Low = 10_000, High = 32_000;
    private static readonly HashSet<int> Given = [];
    private static readonly Lock Gate = new();

    /// <summary>A loopback port nothing listens on now (the probe listener is closed again right away, so it is also
    /// what a "refused connection" test needs).</summary>
    public static int Free()
    {
        lock (Gate)
        {
            for (var attempt = 0; attempt < 500; attempt++)
            {
                var port = Random.Shared.Next(Low, High);
                if (Given.Contains(port) || !CanBind(port)) continue;
                Given.Add(port);
                return port;
            }
        }
        var l = new TcpListener(IPAddress.Loopback, 0); // the whole low range busy: let the kernel choose
        l.Start();
        var kernel = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return kernel;
    }

    private static bool CanBind(int port)
    {
        try
        {
            var l = new TcpListener(IPAddress.Loopback, port) { ExclusiveAddressUse = true };
            l.Start();
            l.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
