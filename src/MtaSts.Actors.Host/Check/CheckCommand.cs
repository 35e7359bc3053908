using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MtaSts.Actors.Host.Check;

/// <summary>
/// <c>mtasts-gateway check &lt;domain&gt; [options]</c>: runs <see cref="DomainChecker"/> and prints its verdict as a table
/// (or JSON). Exit codes: 0 deliverable under the domain's policy, 1 not deliverable, 2 usage or internal error.
/// </summary>
public static class CheckCommand
{
    public const int ExitDeliverable = 0;
    public const int ExitNotDeliverable = 1;
    public const int ExitUsage = 2;

    public const string Help = """
        mtasts-gateway check DOMAIN [options]

        MTA-STS checker: TXT _mta-sts.DOMAIN, policy fetch (https://mta-sts.DOMAIN/.well-known/mta-sts.txt) and its
        certificate, MX lookup and policy coverage, and for each MX host an SMTP connection with EHLO and STARTTLS
        (TLS version, cipher, certificate chain and name). Sends no mail.

        Options:
          --proxy URL              fetch the policy through this HTTP proxy (CONNECT), e.g. http://proxy:3128
          --json                   print the report as JSON instead of a table
          --dns HOST[:PORT]        resolver to ask (default: the system's)
          --ca-bundle FILE         extra trusted CA certificates (PEM) for the policy host and the MX certificates
          --policy-port N          HTTPS port of the policy host (default 443)
          --smtp-port N            SMTP port of the MX hosts (default 25)
          --mx-override HOST:PORT  connect here instead of the MX hosts' addresses (MX names still used for SNI and
                                   certificate names)
          --timeout SECONDS        bound of each network step (default 30): DNS tries (at most 5), the policy
                                   host connect (whole fetch: twice it), each SMTP conversation
          --lenient-content-type   accept a policy served with a Content-Type other than text/plain
          --help                   this text

        Exit codes: 0 deliverable under the domain's policy, 1 not deliverable, 2 usage or internal error.
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        if (args.Any(a => a is "--help" or "-h"))
        {
            await stdout.WriteAsync(Help).ConfigureAwait(false);
            return ExitDeliverable;
        }

        CheckOptions options;
        bool json;
        try
        {
            (options, json) = Parse(args);
        }
        catch (UsageException ex)
        {
            await stderr.WriteLineAsync($"mtasts-gateway check: {ex.Message}").ConfigureAwait(false);
            await stderr.WriteLineAsync("Usage: mtasts-gateway check DOMAIN [--proxy URL] [--json] [options]; see --help").ConfigureAwait(false);
            return ExitUsage;
        }

        CheckReport report;
        try
        {
            report = await DomainChecker.CheckAsync(options, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await stderr.WriteLineAsync("mtasts-gateway check: cancelled").ConfigureAwait(false);
            return ExitUsage;
        }
        catch (Exception ex)
        {
            await stderr.WriteLineAsync($"mtasts-gateway check: internal error: {ex.GetType().Name}: {ex.Message}").ConfigureAwait(false);
            return ExitUsage;
        }

        if (json) await stdout.WriteLineAsync(ToJson(report)).ConfigureAwait(false);
        else await stdout.WriteAsync(ReportPrinter.Table(report)).ConfigureAwait(false);
        await stdout.FlushAsync(ct).ConfigureAwait(false);
        return report.Deliverable ? ExitDeliverable : ExitNotDeliverable;
    }

    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string ToJson(CheckReport report) => JsonSerializer.Serialize(report, JsonOptions);

    private sealed class UsageException(string message) : Exception(message);

    /// <summary>Parses the command line (after "check"); throws on usage errors.</summary>
    public static (CheckOptions Options, bool Json) Parse(string[] args)
    {
        string? domain = null;
        Uri? proxy = null;
        IPEndPoint? dnsServer = null, mxOverride = null;
        string? caBundle = null;
        int policyPort = 443, smtpPort = 25;
        var timeout = TimeSpan.FromSeconds(30);
        bool json = false, lenient = false;

        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            string? inline = null;
            if (arg.StartsWith("--", StringComparison.Ordinal) && arg.IndexOf('=') is var eq and > 2)
            {
                inline = arg[(eq + 1)..];
                arg = arg[..eq];
            }
            string Value()
            {
                if (inline is not null) return inline;
                if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    throw new UsageException($"{arg} needs a value");
                return args[++i];
            }
            void NoValue()
            {
                if (inline is not null) throw new UsageException($"{arg} takes no value");
            }
            switch (arg)
            {
                case "--json": NoValue(); json = true; break;
                case "--lenient-content-type": NoValue(); lenient = true; break;
                case "--proxy": proxy = ParseProxy(Value()); break;
                case "--dns": dnsServer = ParseEndPoint(Value(), 53, "--dns"); break;
                case "--ca-bundle":
                    caBundle = Value();
                    if (!File.Exists(caBundle)) throw new UsageException($"--ca-bundle: no such file '{caBundle}'");
                    try
                    {
                        var roots = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
                        roots.ImportFromPemFile(caBundle);
                        if (roots.Count == 0) throw new UsageException($"--ca-bundle: no certificate in '{caBundle}'");
                    }
                    catch (System.Security.Cryptography.CryptographicException ex)
                    {
                        throw new UsageException($"--ca-bundle: '{caBundle}' is not a PEM certificate bundle: {ex.Message}");
                    }
                    caBundle = Path.GetFullPath(caBundle);
                    break;
                case "--policy-port": policyPort = ParsePort(Value(), arg); break;
                case "--smtp-port": smtpPort = ParsePort(Value(), arg); break;
                case "--mx-override": mxOverride = ParseEndPoint(Value(), null, arg); break;
                case "--timeout":
                    var t = Value();
                    if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || !(seconds > 0) || seconds > 3600)
                        throw new UsageException($"--timeout: '{t}' is not a number of seconds (0 < s <= 3600)");
                    timeout = TimeSpan.FromSeconds(seconds);
                    break;
                default:
                    if (arg.StartsWith('-')) throw new UsageException($"unknown option '{args[i]}'");
                    if (domain is not null) throw new UsageException($"unexpected argument '{arg}' (one domain per check)");
                    domain = NormalizeDomain(arg);
                    break;
            }
        }
        if (domain is null) throw new UsageException("missing DOMAIN");
        return (new CheckOptions
        {
            Domain = domain,
            Proxy = proxy,
            DnsServer = dnsServer,
            CaBundlePath = caBundle,
            PolicyPort = policyPort,
            SmtpPort = smtpPort,
            MxOverride = mxOverride,
            Timeout = timeout,
            LenientContentType = lenient,
        }, json);
    }

    private static string NormalizeDomain(string text)
    {
        var d = text.Trim().TrimEnd('.');
        if (d.Contains('@')) throw new UsageException($"'{text}' looks like a mail address: give the domain only");
        if (d.Length == 0 || d.Any(c => char.IsWhiteSpace(c) || c is '/' or ':' or '[' or ']') || !d.Contains('.'))
            throw new UsageException($"'{text}' is not a domain name");
        try
        {
            d = new IdnMapping().GetAscii(d).ToLowerInvariant();
        }
        catch (ArgumentException)
        {
            throw new UsageException($"'{text}' is not a domain name");
        }
        if (d.Length > 253 || d.Split('.').Any(l => l.Length is 0 or > 63))
            throw new UsageException($"'{text}' is not a domain name");
        return d;
    }

    private static Uri ParseProxy(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
            throw new UsageException($"--proxy: '{text}' is not an http:// proxy URL");
        return uri;
    }

    private static int ParsePort(string text, string option) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and <= 65535
            ? port
            : throw new UsageException($"{option}: '{text}' is not a port number");

    /// <summary>HOST[:PORT] or [V6]:PORT; a host name is resolved with the system resolver.</summary>
    private static IPEndPoint ParseEndPoint(string text, int? defaultPort, string option)
    {
        string host;
        string? port = null;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0) throw new UsageException($"{option}: bad address '{text}'");
            host = text[1..close];
            if (close + 1 < text.Length)
            {
                if (text[close + 1] != ':') throw new UsageException($"{option}: bad address '{text}'");
                port = text[(close + 2)..];
            }
        }
        else if (text.Count(c => c == ':') == 1)
        {
            var colon = text.IndexOf(':');
            host = text[..colon];
            port = text[(colon + 1)..];
        }
        else
        {
            host = text;
        }
        int p;
        if (port is null)
        {
            p = defaultPort ?? throw new UsageException($"{option}: '{text}' needs a port (HOST:PORT)");
        }
        else
        {
            p = ParsePort(port, option);
        }
        if (host.Length == 0) throw new UsageException($"{option}: bad address '{text}'");
        if (IPAddress.TryParse(host, out var address)) return new IPEndPoint(address, p);
        try
        {
            var found = System.Net.Dns.GetHostAddresses(host);
            var pick = found.FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) ?? found.FirstOrDefault();
            return pick is null ? throw new UsageException($"{option}: '{host}' has no address") : new IPEndPoint(pick, p);
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            throw new UsageException($"{option}: cannot resolve '{host}': {ex.Message}");
        }
    }
}
