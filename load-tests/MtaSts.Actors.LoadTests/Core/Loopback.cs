using MtaSts.Actors.TestInfra.Net;
using System.Net;

namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// Load traffic must never leave the machine: a mistyped target could otherwise flood a real MX.
/// Every endpoint the harness connects to or listens on passes through here.
/// </summary>
public static class Loopback
{
    public static IPEndPoint Parse(string hostPort)
    {
        var idx = hostPort.LastIndexOf(':');
        if (idx <= 0 || !int.TryParse(hostPort[(idx + 1)..], out var port) || port is <= 0 or > 65535)
            throw new ArgumentException($"expected host:port, got '{hostPort}'");
        var host = hostPort[..idx].Trim('[', ']');
        IPAddress address;
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) address = IPAddress.Loopback;
        else if (!IPAddress.TryParse(host, out address!))
            throw new ArgumentException($"'{host}' is not an IP literal; only loopback addresses (127.0.0.0/8, ::1) are allowed");
        return Require(new IPEndPoint(address, port));
    }

    public static IPEndPoint Require(IPEndPoint endpoint)
    {
        if (!IPAddress.IsLoopback(endpoint.Address))
            throw new ArgumentException($"refusing non-loopback endpoint {endpoint}: load tests only run against 127.0.0.0/8 or ::1");
        return endpoint;
    }

    public static async Task<bool> WaitForListenerAsync(IPEndPoint endpoint, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !ct.IsCancellationRequested)
        {
            try
            {
                using var c = new System.Net.Sockets.TcpClient();
                await c.ConnectAsync(endpoint.Address, endpoint.Port, ct).ConfigureAwait(false);
                return true;
            }
            catch (System.Net.Sockets.SocketException)
            {
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
        }
        return false;
    }
}
