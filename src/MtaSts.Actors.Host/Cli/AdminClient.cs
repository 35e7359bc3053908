using System.CommandLine;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Host.Cli;

/// <summary>
/// The options every admin command takes (<c>--admin</c>, <c>--token</c>, <c>--token-file</c>, <c>--config</c>,
/// <c>--json</c>) and the client they make. Endpoint: <c>--admin URL</c>, else the first of <c>mtasts.admin.endpoints</c>
/// of <c>--config</c>, else http://127.0.0.1:8025. Token: <c>--token</c>, <c>--token-file</c>,
/// <c>MTASTS_ADMIN_TOKEN</c>, then the configuration's <c>mtasts.admin.token</c>/<c>token-file</c> (with <c>--config</c>).
/// </summary>
internal sealed class AdminConnectionOptions
{
    public const string DefaultUrl = "http://127.0.0.1:8025";
    public const string TokenVariable = "MTASTS_ADMIN_TOKEN";

    public Option<Uri?> Admin { get; } = new("--admin")
    {
        Description = $"admin endpoint URL (default {DefaultUrl}, or the first of mtasts.admin.endpoints of --config)",
        HelpName = "URL",
        CustomParser = r =>
        {
            var text = r.Tokens[0].Value;
            if (!text.Contains("://", StringComparison.Ordinal)) text = "http://" + text;
            if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0) return uri;
            r.AddError($"--admin: '{r.Tokens[0].Value}' is not an http:// URL (e.g. http://127.0.0.1:8025)");
            return null;
        },
    };

    public Option<string?> Token { get; } = new("--token")
    {
        Description = $"bearer token of the admin endpoint (else --token-file, ${TokenVariable}, or the token of --config)",
        HelpName = "TOKEN",
    };

    public Option<string?> TokenFile { get; } = new("--token-file") { Description = "read the bearer token from this file", HelpName = "FILE" };

    public Option<string[]> Config { get; } = GatewayCli.ConfigOption();

    public Option<bool> Json { get; } = new("--json") { Description = "print the admin API's JSON answer as it is (for scripts)" };

    public static AdminConnectionOptions AddTo(Command command)
    {
        var o = new AdminConnectionOptions();
        command.Options.Add(o.Admin);
        command.Options.Add(o.Token);
        command.Options.Add(o.TokenFile);
        command.Options.Add(o.Config);
        command.Options.Add(o.Json);
        return o;
    }

    public AdminClient Connect(ParseResult p)
    {
        Uri? url = p.GetValue(Admin);
        string? token = p.GetValue(Token);
        if (token is null && p.GetValue(TokenFile) is { } file)
        {
            if (!File.Exists(file)) throw new CliException(GatewayCli.ExitUsage, $"--token-file: file not found: {file}");
            token = File.ReadAllText(file).Trim();
            if (token.Length == 0) throw new CliException(GatewayCli.ExitUsage, $"--token-file: {file} is empty");
        }
        if (token is null && Environment.GetEnvironmentVariable(TokenVariable) is { Length: > 0 } fromEnv) token = fromEnv.Trim();
        if (p.GetValue(Config) is { Length: > 0 } configFiles && (url is null || token is null))
        {
            var admin = Admin_Options(GatewayConfig.Load(GatewayCli.ConfigFiles(configFiles)));
            token ??= admin.Token;
            if (url is null)
            {
                var ep = admin.Endpoints.FirstOrDefault()
                    ?? throw new CliException(GatewayCli.ExitUsage, "the admin endpoint is off in this configuration (mtasts.admin.endpoints = []); give --admin URL");
                if (ep.Port == 0) throw new CliException(GatewayCli.ExitUsage, $"mtasts.admin.endpoints: {ep} is an ephemeral port; give --admin URL");
                var address = ep.Address.Equals(IPAddress.Any) ? IPAddress.Loopback : ep.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : ep.Address;
                url = new Uri($"http://{new IPEndPoint(address, ep.Port)}/");
            }
        }
        return new AdminClient(url ?? new Uri(DefaultUrl), token);
    }

    private static Admin.AdminOptions Admin_Options(GatewayConfig config) => MtaSts.Actors.Admin.AdminOptions.FromHocon(config.Hocon);
}

/// <summary>
/// HTTP to the admin endpoint with the CLI's error contract: not reachable → exit 3 naming the URL; 401 → exit 3
/// "admin token rejected"; 404 → exit 1 with the API's error text; 400 → exit 2; anything else not 2xx → exit 3.
/// </summary>
internal sealed class AdminClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly bool _hasToken;

    public AdminClient(Uri baseUrl, string? token)
    {
        BaseUrl = baseUrl.AbsoluteUri.EndsWith('/') ? baseUrl : new Uri(baseUrl.AbsoluteUri + "/");
        _http = new HttpClient { BaseAddress = BaseUrl, Timeout = TimeSpan.FromSeconds(30) };
        _hasToken = token is not null;
        if (token is not null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public Uri BaseUrl { get; }

    public Task<string> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, ct);

    /// <summary>The answer's body (JSON) of a 2xx; otherwise a <see cref="CliException"/> with the exit code.</summary>
    public Task<string> SendAsync(HttpMethod method, string path, CancellationToken ct) => SendAsync(method, path, null, ct);

    /// <inheritdoc cref="SendAsync(HttpMethod, string, CancellationToken)"/>
    public async Task<string> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            using var request = new HttpRequestMessage(method, path) { Content = content };
            response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException || ex is TaskCanceledException && !ct.IsCancellationRequested)
        {
            var why = ex is TaskCanceledException ? "no answer within 30 s" : ex.InnerException?.Message ?? ex.Message;
            throw new CliException(GatewayCli.ExitAdminUnreachable,
                $"cannot reach the admin endpoint at {BaseUrl} (is `serve` running? see mtasts.admin.endpoints): {why}");
        }
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            if (response.IsSuccessStatusCode) return body;
            throw response.StatusCode switch
            {
                HttpStatusCode.Unauthorized => new CliException(GatewayCli.ExitAdminUnreachable, _hasToken
                    ? $"admin token rejected by {BaseUrl}"
                    : $"admin token rejected by {BaseUrl}: none given (--token, --token-file, ${AdminConnectionOptions.TokenVariable} or --config with mtasts.admin.token)"),
                HttpStatusCode.NotFound => new CliException(GatewayCli.ExitNotFound, ErrorText(body) ?? $"not found: {path}"),
                HttpStatusCode.BadRequest => new CliException(GatewayCli.ExitUsage, ErrorText(body) ?? $"bad request: {path}"),
                _ => new CliException(GatewayCli.ExitAdminUnreachable, $"admin endpoint at {BaseUrl} answered {(int)response.StatusCode} {response.ReasonPhrase}: {ErrorText(body) ?? body}"),
            };
        }
    }

    /// <summary>The API's <c>{"error": "..."}</c> text, when the body is that.</summary>
    private static string? ErrorText(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String
                ? e.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void Dispose() => _http.Dispose();
}
