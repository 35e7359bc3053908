using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MtaSts.Actors.Host.Check;

/// <summary>
/// <c>mtasts-gateway check DOMAIN [options]</c>: runs <see cref="DomainChecker"/> and prints its verdict as a table
/// (or JSON). Exit codes: 0 deliverable under the domain's policy, 1 not deliverable, 2 usage or internal error.
/// Parsed by System.CommandLine as a subcommand of <see cref="Cli.GatewayCli"/>; option values are checked while
/// parsing (a bad one is a usage error, exit 2).
/// </summary>
public static class CheckCommand
{
    public const int ExitDeliverable = 0;
    public const int ExitNotDeliverable = 1;
    public const int ExitUsage = 2;

    /// <summary>The parsed option symbols of one <c>check</c> command instance.</summary>
    private sealed record Symbols(
        Argument<string> Domain, Option<Uri?> Proxy, Option<bool> Json, Option<IPEndPoint?> Dns, Option<string?> CaBundle,
        Option<int?> PolicyPort, Option<int?> SmtpPort, Option<IPEndPoint?> MxOverride, Option<TimeSpan?> Timeout, Option<bool> Lenient)
    {
        public (CheckOptions Options, bool Json) Read(ParseResult p) => (new CheckOptions
        {
            Domain = p.GetValue(Domain)!,
            Proxy = p.GetValue(Proxy),
            DnsServer = p.GetValue(Dns),
            CaBundlePath = p.GetValue(CaBundle),
            PolicyPort = p.GetValue(PolicyPort) ?? 443,
            SmtpPort = p.GetValue(SmtpPort) ?? 25,
            MxOverride = p.GetValue(MxOverride),
            Timeout = p.GetValue(Timeout) ?? TimeSpan.FromSeconds(30),
            LenientContentType = p.GetValue(Lenient),
        }, p.GetValue(Json));
    }

    /// <summary>The <c>check</c> subcommand.</summary>
    public static Command Create() => Create(out _);

    private static Command Create(out Symbols symbols)
    {
        var s = symbols = new Symbols(
            new Argument<string>("DOMAIN")
            {
                Description = "the recipient domain to check (not a mail address)",
                CustomParser = r => Guard(r, NormalizeDomain),
            },
            new Option<Uri?>("--proxy")
            {
                Description = "fetch the policy through this HTTP proxy (CONNECT), e.g. http://proxy:3128",
                HelpName = "URL",
                CustomParser = r => Guard(r, ParseProxy),
            },
            new Option<bool>("--json") { Description = "print the report as JSON instead of a table" },
            new Option<IPEndPoint?>("--dns")
            {
                Description = "resolver to ask (default: the system's)",
                HelpName = "HOST[:PORT]",
                CustomParser = r => Guard(r, t => ParseEndPoint(t, 53, "--dns")),
            },
            new Option<string?>("--ca-bundle")
            {
                Description = "extra trusted CA certificates (PEM) for the policy host and the MX certificates",
                HelpName = "FILE",
                CustomParser = r => Guard(r, ParseCaBundle),
            },
            new Option<int?>("--policy-port")
            {
                Description = "HTTPS port of the policy host (default 443)",
                HelpName = "N",
                CustomParser = r => Guard<int?>(r, t => ParsePort(t, "--policy-port")),
            },
            new Option<int?>("--smtp-port")
            {
                Description = "SMTP port of the MX hosts (default 25)",
                HelpName = "N",
                CustomParser = r => Guard<int?>(r, t => ParsePort(t, "--smtp-port")),
            },
            new Option<IPEndPoint?>("--mx-override")
            {
                Description = "connect here instead of the MX hosts' addresses (MX names still used for SNI and certificate names)",
                HelpName = "HOST:PORT",
                CustomParser = r => Guard(r, t => ParseEndPoint(t, null, "--mx-override")),
            },
            new Option<TimeSpan?>("--timeout")
            {
                Description = "bound of each network step in seconds (default 30): DNS tries (at most 5), the policy host connect (whole fetch: twice it), each SMTP conversation",
                HelpName = "SECONDS",
                CustomParser = r => Guard<TimeSpan?>(r, t => ParseTimeout(t)),
            },
            new Option<bool>("--lenient-content-type") { Description = "accept a policy served with a Content-Type other than text/plain" });

        var command = new Command("check", "MTA-STS checker: TXT, policy and its certificate, MX coverage, STARTTLS of every MX")
        {
            s.Domain, s.Proxy, s.Json, s.Dns, s.CaBundle, s.PolicyPort, s.SmtpPort, s.MxOverride, s.Timeout, s.Lenient,
        };
        Cli.Help.Epilogue(command, """
            Checks TXT _mta-sts.DOMAIN, the policy fetch (https://mta-sts.DOMAIN/.well-known/mta-sts.txt) and its
            certificate, MX lookup and policy coverage, and for each MX host an SMTP connection with EHLO and STARTTLS
            (TLS version, cipher, certificate chain and name). Sends no mail.

            Exit codes: 0 deliverable under the domain's policy, 1 not deliverable, 2 usage or internal error.
            """);
        command.SetAction((p, ct) =>
        {
            var (options, json) = s.Read(p);
            return ExecuteAsync(options, json, p.InvocationConfiguration.Output, p.InvocationConfiguration.Error, ct);
        });
        return command;
    }

    /// <summary>Runs <c>check</c> with <paramref name="args"/> (what follows "check" on the command line).</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        return Cli.GatewayCli.RunAsync(["check", .. args], stdout, stderr, ct);
    }

    private static async Task<int> ExecuteAsync(CheckOptions options, bool json, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        CheckReport report;
        try
        {
            report = await Cli.Spinner.RunAsync(stdout, json, $"checking {options.Domain}",
                () => DomainChecker.CheckAsync(options, ct)).ConfigureAwait(false);
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

    /// <summary>Runs a value parser; a <see cref="UsageException"/> becomes a parse error (exit 2).</summary>
    private static T? Guard<T>(ArgumentResult r, Func<string, T> parse)
    {
        if (r.Tokens.Count == 0) return default;
        try
        {
            return parse(r.Tokens[0].Value);
        }
        catch (UsageException ex)
        {
            r.AddError(ex.Message);
            return default;
        }
    }

    /// <summary>Parses the command line (after "check"); throws <see cref="ArgumentException"/> on usage errors.</summary>
    public static (CheckOptions Options, bool Json) Parse(string[] args)
    {
        var root = new RootCommand { Create(out var symbols) };
        var parsed = root.Parse(["check", .. args]);
        if (parsed.Errors.Count > 0) throw new ArgumentException(string.Join("; ", parsed.Errors.Select(e => e.Message)), nameof(args));
        return symbols.Read(parsed);
    }

    private static string ParseCaBundle(string caBundle)
    {
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
        return Path.GetFullPath(caBundle);
    }

    private static TimeSpan ParseTimeout(string t)
    {
        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || !(seconds > 0) || seconds > 3600)
            throw new UsageException($"--timeout: '{t}' is not a number of seconds (0 < s <= 3600)");
        return TimeSpan.FromSeconds(seconds);
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
