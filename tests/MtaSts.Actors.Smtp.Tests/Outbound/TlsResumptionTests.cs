using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.TestInfra.Certificates;
using MtaSts.Actors.TestInfra.Net;
using MtaSts.Actors.TestInfra.Smtp;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Smtp.Tests.Outbound;

/// <summary>
/// TLS session resumption on outbound connections. .NET on Linux resumes a client session (TLS 1.3 ticket) for the same
/// target host when the server offers it; the gateway's SNI/target host is the MX name. Resumption must not skip the
/// RFC 8461 §4.2 / RFC 7672 §3 checks: the certificate callback runs on the resumed connection too, with the certificate
/// of the original session, against THIS connection's reference identifiers.
/// </summary>
public sealed class TlsResumptionTests : IAsyncLifetime
{
    private const string Mx = "mx.resumption.example"; // its own name: .NET's client session cache is per target host and process-wide
    private readonly TestCertificateAuthority _ca = new();
    private StartTlsServer _server = null!;

    public Task InitializeAsync()
    {
        _server = new StartTlsServer(TestLeafCertificates.Issue(_ca, Mx));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _ca.Dispose();
    }

    private OutboundConnection Connection(ConnectionSecurity security, long dcid) =>
        new(new MxTarget(Mx, _server.Address, _server.Port), security, new OutboundOptions
        {
            HeloName = "gateway.test",
            Verifier = new CertificateVerifier(new[] { _ca.Root }, useSystemRoots: false),
            CommandTimeout = TimeSpan.FromSeconds(30),
            GreetingTimeout = TimeSpan.FromSeconds(30),
            DataTimeout = TimeSpan.FromSeconds(30),
        }, MailLog.Null, dcid);

    private static ConnectionSecurity Plan(TlsSupport tls, string domain, MtaStsMode sts = MtaStsMode.None) =>
        SecurityPlanner.Plan(new SecurityContext(domain, Mx, tls, DaneSupport.None, sts, true, null));

    private async Task<ConnectResult> ConnectAndCloseAsync(ConnectionSecurity plan, long dcid)
    {
        await using var c = Connection(plan, dcid);
        var cr = await c.ConnectAsync();
        await c.CloseAsync();
        return cr;
    }

    [Fact]
    public async Task Second_connection_resumes_and_is_verified_again()
    {
        var plan = Plan(TlsSupport.Preferred, "resumption.example", MtaStsMode.Enforce);
        var first = await ConnectAndCloseAsync(plan, 1);
        var second = await ConnectAndCloseAsync(plan, 2);

        Assert.True(first.Ready, first.Error);
        Assert.True(second.Ready, second.Error);
        var hellos = await _server.HandshakesAsync(2);
        Assert.False(hellos[0].Resumed);
        Assert.True(hellos[1].Offered, "the client offered no session ticket");
        Assert.True(hellos[1].Resumed, "the server did not resume the session");
        // The MTA-STS check ran on the resumed connection too (certificate of the resumed session, MX name).
        Assert.Contains(second.Checks, ch => ch.Check.Source == SecuritySource.MtaSts && ch.Ok);
    }

    [Fact]
    public async Task A_resumed_session_does_not_pass_a_check_the_certificate_fails()
    {
        // First connection: hosted-domain verification (the certificate names the MX host) passes and leaves a ticket.
        var hosted = await ConnectAndCloseAsync(Plan(TlsSupport.RequiredVerifyHostedDomains, "customer.example"), 1);
        Assert.True(hosted.Ready, hosted.Error);
        // Second connection to the same MX host: the plan now wants the recipient domain in the certificate. The server
        // resumes the session, and the check still runs and fails — resumption is no shortcut past verification.
        var strict = await ConnectAndCloseAsync(Plan(TlsSupport.RequiredVerify, "customer.example"), 2);
        var hellos = await _server.HandshakesAsync(2);
        Assert.True(hellos[1].Resumed, "the server did not resume the session");
        Assert.Equal(ConnectFailure.Verification, strict.Failure);
    }

    /// <summary>A minimal STARTTLS server: one certificate context for every connection (so .NET's server keeps its
    /// session cache and ticket keys), hellos read by <see cref="TlsHelloProbe"/>, then EHLO and QUIT.</summary>
    private sealed class StartTlsServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly SslStreamCertificateContext _context;
        private readonly CancellationTokenSource _cts = new();
        private readonly ConcurrentQueue<TlsHelloFacts?> _handshakes = new();
        private readonly Task _loop;

        public StartTlsServer(X509Certificate2 certificate)
        {
            _context = SslStreamCertificateContext.Create(certificate, additionalCertificates: null, offline: true);
            _listener.Start();
            _loop = AcceptAsync();
        }

        public IPAddress Address => IPAddress.Loopback;
        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public async Task<TlsHelloFacts[]> HandshakesAsync(int count)
        {
            for (var i = 0; i < 200 && _handshakes.Count < count; i++) await Task.Delay(25);
            Assert.Equal(count, _handshakes.Count);
            return _handshakes.Select(f => f ?? throw new InvalidOperationException("the probe could not read the hellos")).ToArray();
        }

        private async Task AcceptAsync()
        {
            while (!_cts.IsCancellationRequested)
            {
                Socket s;
                try { s = await _listener.AcceptSocketAsync(_cts.Token); }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
                _ = SessionAsync(s);
            }
        }

        private async Task SessionAsync(Socket socket)
        {
            Stream stream = new NetworkStream(socket, ownsSocket: true);
            try
            {
                await WriteAsync(stream, "220 mx.resumption.example ESMTP");
                var tls = false;
                while (await ReadLineAsync(stream) is { } line)
                {
                    var verb = line.Split(' ')[0].ToUpperInvariant();
                    if (verb == "EHLO") await WriteAsync(stream, tls ? "250-mx.resumption.example\r\n250 PIPELINING" : "250-mx.resumption.example\r\n250 STARTTLS");
                    else if (verb == "STARTTLS" && !tls)
                    {
                        await WriteAsync(stream, "220 2.0.0 go ahead");
                        var probe = new TlsHelloProbe(stream);
                        var ssl = new SslStream(probe);
                        try
                        {
                            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                            {
                                ServerCertificateContext = _context,
                                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                            }, _cts.Token);
                        }
                        finally { _handshakes.Enqueue(probe.Facts); } // the client may reject the certificate after the hellos
                        stream = ssl;
                        tls = true;
                    }
                    else if (verb == "QUIT") { await WriteAsync(stream, "221 2.0.0 bye"); break; }
                    else await WriteAsync(stream, "250 2.0.0 ok");
                }
            }
            catch (Exception e) when (e is IOException or AuthenticationException or OperationCanceledException or SocketException) { }
            finally { await stream.DisposeAsync(); }
        }

        private static async Task WriteAsync(Stream s, string reply)
        {
            await s.WriteAsync(Encoding.ASCII.GetBytes(reply + "\r\n"));
            await s.FlushAsync();
        }

        /// <summary>Byte by byte, so nothing after the STARTTLS line is read ahead of the TLS handshake.</summary>
        private static async Task<string?> ReadLineAsync(Stream s)
        {
            var sb = new StringBuilder();
            var b = new byte[1];
            while (await s.ReadAsync(b) == 1)
            {
                if (b[0] == '\n') return sb.ToString().TrimEnd('\r');
                sb.Append((char)b[0]);
            }
            return null;
        }

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            _listener.Stop();
            await _loop;
            _cts.Dispose();
        }
    }
}
