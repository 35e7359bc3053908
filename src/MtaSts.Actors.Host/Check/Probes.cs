using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using AuthenticationException = System.Security.Authentication.AuthenticationException;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Outbound;
using MtaSts.Actors.Tls;

namespace MtaSts.Actors.Host.Check;

/// <summary>What a TLS handshake showed: the leaf, what the peer presented, and our verdict on it.</summary>
internal sealed class PeerCertificate
{
    public X509Certificate2? Leaf { get; private set; }
    public List<X509Certificate2> Presented { get; } = new();

    /// <summary>Remote certificate callback body: records the certificate and accepts it (a probe sends no mail;
    /// the verdict is computed afterwards with <see cref="CertificateVerifier"/>, so that the TLS version and cipher
    /// can be reported even for an invalid certificate).</summary>
    public bool Record(X509Certificate? certificate, X509Chain? chain)
    {
        if (certificate is null) return true;
        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        Leaf = X509CertificateLoader.LoadCertificate(leaf.RawData);
        Presented.Clear();
        Presented.Add(Leaf);
        if (chain is not null)
            foreach (var c in chain.ChainPolicy.ExtraStore)
                if (!Presented.Any(p => p.RawDataMemory.Span.SequenceEqual(c.RawDataMemory.Span)))
                    Presented.Add(X509CertificateLoader.LoadCertificate(c.RawData));
        return true;
    }

    public CertificateReport Report(CertificateVerifier verifier, string referenceName, string? protocol = null, string? cipher = null)
    {
        if (Leaf is null)
            return new CertificateReport(false, "no peer certificate", null, null, Array.Empty<string>(), null, null, null,
                Array.Empty<string>(), protocol, cipher);
        var verdict = verifier.Verify(Leaf, Presented, new[] { referenceName });
        return new CertificateReport(verdict.Ok, verdict.Error, Leaf.Subject, Leaf.Issuer,
            CertificateVerifier.PresentedIdentifiers(Leaf), new DateTimeOffset(Leaf.NotBefore.ToUniversalTime()),
            new DateTimeOffset(Leaf.NotAfter.ToUniversalTime()), Leaf.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256),
            Presented.Select(c => c.Subject).ToList(), protocol, cipher);
    }
}

/// <summary>Direct TLS handshake with the policy host, only to show its certificate (the fetch itself is
/// <see cref="MtaSts.Actors.Policy.Fetch.PolicyFetcher"/>'s, which enforces the same checks).</summary>
internal static class PolicyHostProbe
{
    public static async Task<CertificateReport?> RunAsync(string host, int port, Dns.IDnsResolver dns, CertificateVerifier verifier,
        TimeSpan timeout, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        var peer = new PeerCertificate();
        try
        {
            var answer = await dns.AddressesAsync(host, ct: cts.Token).ConfigureAwait(false);
            if (!answer.IsOk)
                return Failed($"cannot resolve {host}: {answer.Error ?? answer.Outcome.ToString()}");
            Exception? last = null;
            foreach (var address in answer.Records)
            {
                using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(address, port), cts.Token).ConfigureAwait(false);
                }
                catch (SocketException ex)
                {
                    last = ex;
                    continue;
                }
                await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), false);
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = host,
                    EnabledSslProtocols = SslProtocols.None,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    RemoteCertificateValidationCallback = (_, cert, chain, _) => peer.Record(cert, chain),
                }, cts.Token).ConfigureAwait(false);
                return peer.Report(verifier, host, OutboundConnection.ProtocolName(ssl.SslProtocol), ssl.NegotiatedCipherSuite.ToString());
            }
            return Failed($"no connection to {host}:{port}: {last?.Message ?? "no address"}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return Failed($"no TLS handshake with {host}:{port} within {timeout.TotalSeconds:0.###}s");
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or SocketException)
        {
            return peer.Leaf is null ? Failed($"TLS with {host}:{port} failed: {Innermost(ex)}") : peer.Report(verifier, host);
        }
    }

    private static CertificateReport Failed(string error) =>
        new(false, error, null, null, Array.Empty<string>(), null, null, null, Array.Empty<string>());

    internal static string Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e.Message;
    }
}

/// <summary>
/// One SMTP conversation with an MX host, the way an operator would do it by hand: connect, read the greeting,
/// EHLO, STARTTLS when offered (with SNI = the MX name), EHLO again, QUIT. Records the EHLO keywords, the TLS
/// version and cipher and the certificate the server presented; sends no mail.
/// </summary>
internal sealed class SmtpProbe
{
    private readonly string _mxHost;
    private readonly IPEndPoint _endPoint;
    private readonly string _heloName;
    private readonly TimeSpan _timeout;
    private readonly CertificateVerifier _verifier;
    private readonly MailLog _log;
    private readonly long _dcid;
    private readonly bool _tlsRequired;

    /// <param name="tlsRequired">The MX is covered by an enforce policy (log lines say "deferring" as a delivery would).</param>
    public SmtpProbe(string mxHost, IPEndPoint endPoint, string heloName, TimeSpan timeout, CertificateVerifier verifier,
        MailLog log, long dcid, bool tlsRequired)
    {
        _mxHost = mxHost;
        _endPoint = endPoint;
        _heloName = heloName;
        _timeout = timeout;
        _verifier = verifier;
        _log = log;
        _dcid = dcid;
        _tlsRequired = tlsRequired;
    }

    public sealed record Result(bool Connected, string? Greeting, IReadOnlyList<string> Extensions, bool StartTls,
        string? Protocol, string? Cipher, CertificateReport? Certificate, string? Error, IReadOnlyList<string> Transcript);

    public async Task<Result> RunAsync(CancellationToken ct)
    {
        var transcript = new Transcript();
        var peer = new PeerCertificate();
        using var client = new SmtpClient(transcript)
        {
            LocalDomain = _heloName,
            Timeout = (int)Math.Min(int.MaxValue, _timeout.TotalMilliseconds),
            CheckCertificateRevocation = false,
            ServerCertificateValidationCallback = (_, cert, chain, _) => peer.Record(cert, chain),
            SslProtocols = SslProtocols.None, // OS default: report what the server really negotiates
        };
        Socket? socket = new Socket(_endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(_timeout);
        try
        {
            try
            {
                await socket.ConnectAsync(_endPoint, cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                socket.Dispose();
                return Fail(transcript, peer, $"connection to {_endPoint} timed out after {_timeout.TotalSeconds:0.###}s", connected: false);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                return Fail(transcript, peer, $"connection to {_endPoint} failed: {ex.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.TimedOut => "connection timed out",
                    SocketError.HostUnreachable or SocketError.NetworkUnreachable => "no route to host",
                    _ => ex.Message,
                }}", connected: false);
            }
            var local = socket.LocalEndPoint as IPEndPoint;
            _log.Info("delivery_connection", $"New SMTP DCID {_dcid} interface {local?.Address} address {_endPoint.Address} port {_endPoint.Port}",
                ("dcid", _dcid), ("interface", local?.Address.ToString()), ("address", _endPoint.Address.ToString()),
                ("port", _endPoint.Port), ("mx", _mxHost));

            // SNI and the name checks use the MX host name (RFC 8461 §4.2, §7.1), whatever address we connect to.
            await client.ConnectAsync(socket, _mxHost, _endPoint.Port, SecureSocketOptions.StartTlsWhenAvailable, cts.Token)
                .ConfigureAwait(false);
            socket = null; // owned by MailKit now

            string? protocol = null, cipher = null;
            CertificateReport? cert = null;
            if (client.IsSecure)
            {
                protocol = OutboundConnection.ProtocolName(client.SslProtocol);
                cipher = client.SslCipherSuite?.ToString() ?? "unknown";
                _log.Info("tls_success", $"DCID {_dcid} TLS success protocol {protocol} cipher {cipher}",
                    ("dcid", _dcid), ("protocol", protocol), ("cipher", cipher));
                cert = peer.Report(_verifier, _mxHost, protocol, cipher);
                if (!cert.Ok) LogVerifyError(cert.Error!);
            }
            else if (_tlsRequired)
            {
                LogTlsRequired();
            }
            try
            {
                using var quit = new CancellationTokenSource(TimeSpan.FromSeconds(Math.Min(5, _timeout.TotalSeconds)));
                await client.DisconnectAsync(true, quit.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // QUIT is a courtesy
            }
            return new Result(true, transcript.Greeting, transcript.Extensions, transcript.StartTlsOffered, protocol, cipher, cert,
                null, transcript.Lines);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            socket?.Dispose();
            return Classify(ex, transcript, peer, ct);
        }
    }

    private Result Classify(Exception ex, Transcript t, PeerCertificate peer, CancellationToken ct)
    {
        var lastCommand = t.LastCommand;
        var afterStartTls = t.StartTlsAccepted;
        string error;
        var connected = t.Greeting is not null;
        switch (ex)
        {
            case SslHandshakeException or AuthenticationException:
                error = $"TLS handshake failed: {PolicyHostProbe.Innermost(ex)}";
                break;
            case SmtpCommandException sce when lastCommand.StartsWith("STARTTLS", StringComparison.OrdinalIgnoreCase):
                error = $"STARTTLS refused: {(int)sce.StatusCode} {sce.Message}";
                break;
            case SmtpCommandException sce:
                error = $"{(lastCommand.Length == 0 ? "greeting" : lastCommand.Split(' ')[0])} refused: {(int)sce.StatusCode} {sce.Message}";
                connected = false;
                break;
            case OperationCanceledException or TimeoutException when !ct.IsCancellationRequested:
                error = $"timeout after {_timeout.TotalSeconds:0.###}s " + (lastCommand.Length == 0 ? "waiting for the greeting" : $"waiting for the reply to {lastCommand.Split(' ')[0]}");
                break;
            default:
                error = $"{(lastCommand.Length == 0 ? "before the greeting" : "after " + lastCommand.Split(' ')[0])}: {PolicyHostProbe.Innermost(ex)}";
                break;
        }
        if (afterStartTls || ex is SslHandshakeException or AuthenticationException)
        {
            _log.Info("tls_failed", $"DCID {_dcid} TLS failed: {PolicyHostProbe.Innermost(ex)}", ("dcid", _dcid), ("error", error));
            if (_tlsRequired) LogTlsRequired();
        }
        else
        {
            _log.Info("connection_error", $"Connection Error: {error} DCID: {_dcid} IP: {_endPoint.Address}",
                ("dcid", _dcid), ("ip", _endPoint.Address.ToString()), ("error", error));
        }
        var cert = peer.Leaf is null ? null : peer.Report(_verifier, _mxHost);
        // Connected = the server greeted and took EHLO; a broken STARTTLS still counts as "answers" (a sender
        // without MTA-STS would retry in the clear).
        return new Result(connected && t.EhloAccepted, t.Greeting, t.Extensions, t.StartTlsOffered, null, null, cert, error, t.Lines);
    }

    private Result Fail(Transcript t, PeerCertificate peer, string error, bool connected)
    {
        _log.Info("connection_error", $"Connection Error: {error} DCID: {_dcid} IP: {_endPoint.Address}",
            ("dcid", _dcid), ("ip", _endPoint.Address.ToString()), ("error", error));
        return new Result(connected, t.Greeting, t.Extensions, t.StartTlsOffered, null, null,
            peer.Leaf is null ? null : peer.Report(_verifier, _mxHost), error, t.Lines);
    }

    private void LogVerifyError(string error)
    {
        if (_tlsRequired)
        {
            _log.Info("tls_verify_failed", $"DCID {_dcid} TLS deferring: verify error: {error}", ("dcid", _dcid), ("error", error));
            LogTlsRequired();
        }
        else
        {
            _log.Info("tls_verify_report", $"DCID {_dcid} TLS verify error (not enforced): {error}", ("dcid", _dcid), ("error", error));
        }
    }

    private void LogTlsRequired() =>
        _log.Info("tls_required_failed", $"DCID {_dcid} {OutboundConnection.TlsRequiredFailed}", ("dcid", _dcid));

    /// <summary>MailKit protocol logger: keeps the conversation as C:/S: lines and extracts greeting, EHLO keywords and
    /// the STARTTLS exchange.</summary>
    private sealed class Transcript : IProtocolLogger
    {
        private readonly List<string> _lines = new();
        private readonly StringBuilder _server = new();
        private readonly StringBuilder _client = new();
        private int _ehloCount, _ehloLine;
        private bool _collectingEhlo;

        public IAuthenticationSecretDetector? AuthenticationSecretDetector { get; set; }
        public string LastCommand { get; private set; } = "";
        public string? Greeting { get; private set; }
        public bool EhloAccepted { get; private set; }
        public bool StartTlsOffered { get; private set; }
        public bool StartTlsAccepted { get; private set; }
        public List<string> Extensions { get; } = new();
        public IReadOnlyList<string> Lines { get { lock (_lines) return _lines.ToArray(); } }

        public void LogConnect(Uri uri) { }

        public void LogClient(byte[] buffer, int offset, int count)
        {
            lock (_lines)
            {
                _client.Append(Encoding.ASCII.GetString(buffer, offset, count));
                foreach (var line in TakeLines(_client))
                {
                    _lines.Add("C: " + line);
                    LastCommand = line;
                    var verb = line.Split(' ')[0].ToUpperInvariant();
                    _collectingEhlo = verb is "EHLO" or "HELO" && _ehloCount++ == 0;
                    _ehloLine = 0;
                }
            }
        }

        public void LogServer(byte[] buffer, int offset, int count)
        {
            lock (_lines)
            {
                _server.Append(Encoding.ASCII.GetString(buffer, offset, count));
                foreach (var line in TakeLines(_server))
                {
                    _lines.Add("S: " + line);
                    var code = line.Length >= 3 ? line[..3] : line;
                    var last = line.Length == 3 || (line.Length > 3 && line[3] == ' ');
                    if (LastCommand.Length == 0)
                    {
                        if (code == "220") Greeting = Greeting is null ? line : Greeting;
                        continue;
                    }
                    var verb = LastCommand.Split(' ')[0].ToUpperInvariant();
                    if (verb is "EHLO" or "HELO" && last && code == "250") EhloAccepted = true;
                    if (verb == "STARTTLS" && last && code == "220") StartTlsAccepted = true;
                    if (_collectingEhlo && code == "250" && _ehloLine++ > 0 && line.Length > 4)
                    {
                        // First EHLO reply: line 1 greets, the others are keywords (RFC 5321 §4.1.1.1).
                        var keyword = line[4..].Trim();
                        Extensions.Add(keyword);
                        if (keyword.Split(' ')[0].Equals("STARTTLS", StringComparison.OrdinalIgnoreCase)) StartTlsOffered = true;
                    }
                    if (last && verb is "EHLO" or "HELO") _collectingEhlo = false;
                }
            }
        }

        private static IEnumerable<string> TakeLines(StringBuilder sb)
        {
            var text = sb.ToString();
            var lines = new List<string>();
            int start = 0, nl;
            while ((nl = text.IndexOf('\n', start)) >= 0)
            {
                lines.Add(text[start..nl].TrimEnd('\r'));
                start = nl + 1;
            }
            sb.Clear().Append(text[start..]);
            return lines;
        }

        public void Dispose() { }
    }
}
