using System.Net;
using Akka.Configuration;
using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Admin;

/// <summary>
/// <c>mtasts.admin</c>: where the admin HTTP endpoint listens and how it is protected. Parsed and validated here
/// (the feature owns its settings); errors name the setting.
/// </summary>
public sealed record AdminOptions
{
    /// <summary>Listen addresses; empty turns the admin endpoint off.</summary>
    public IReadOnlyList<IPEndPoint> Endpoints { get; init; } = [new(IPAddress.Loopback, 8025)];

    /// <summary>Bearer token required on every request except the health probes; null = none (loopback only).</summary>
    public string? Token { get; init; }

    /// <summary>Named tokens (<c>mtasts.admin.tokens = [{ name = "alice", token-file = "/etc/…" }]</c>): each works like
    /// <see cref="Token"/> and its name says who did an action in the operator log.</summary>
    public IReadOnlyList<AdminToken> Tokens { get; init; } = [];

    /// <summary>Any token configured: every request but the health probes must carry one.</summary>
    public bool RequiresToken => Token is not null || Tokens.Count > 0;

    /// <summary>Destinations that get their own label in per-destination metrics; the rest count as "other".</summary>
    public int MetricsTopDestinations { get; init; } = 50;

    /// <summary><c>mtasts.admin.metrics = on|off</c>: off records nothing (no observer on the operator log, no
    /// collectors) and <c>/metrics</c> answers 404; the rest of the admin endpoint works as before.</summary>
    public bool Metrics { get; init; } = true;

    public bool Enabled => Endpoints.Count > 0;

    /// <summary>Reads <c>mtasts.admin</c>. Throws <see cref="GatewayConfigException"/> listing every problem.</summary>
    public static AdminOptions FromHocon(Config hocon)
    {
        var errors = new List<string>();
        var a = hocon.HasPath("mtasts.admin") ? hocon.GetConfig("mtasts.admin") : ConfigurationFactory.Empty;
        var endpoints = new List<IPEndPoint>();
        if (a.HasPath("endpoints"))
            foreach (var s in a.GetStringList("endpoints"))
                if (IPEndPoint.TryParse(s, out var ep) && s.Contains(':')) endpoints.Add(ep); // port 0: ephemeral (tests)
                else errors.Add($"mtasts.admin.endpoints: '{s}' is not an address:port (e.g. 127.0.0.1:8025)");
        else endpoints.Add(new IPEndPoint(IPAddress.Loopback, 8025));

        string? token = a.HasPath("token") && a.GetString("token") is { Length: > 0 } t ? t : null;
        if (a.HasPath("token-file") && a.GetString("token-file") is { Length: > 0 } file)
        {
            if (token is not null) errors.Add("mtasts.admin: set token or token-file, not both");
            else if (!File.Exists(file)) errors.Add($"mtasts.admin.token-file: file not found: {file}");
            else token = File.ReadAllText(file).Trim();
            if (token is { Length: 0 }) errors.Add($"mtasts.admin.token-file: {file} is empty");
        }
        if (token is { Length: < 16 }) errors.Add("mtasts.admin.token: at least 16 characters");
        var tokens = NamedTokens(a, errors);
        // A token-less admin endpoint is only acceptable where only this host can reach it.
        if (token is null && tokens.Count == 0 && endpoints.FirstOrDefault(e => !IPAddress.IsLoopback(e.Address)) is { } open)
            errors.Add($"mtasts.admin.endpoints: {open} is not a loopback address; set mtasts.admin.token or token-file");

        int top = 50;
        if (a.HasPath("metrics-top-destinations"))
        {
            var raw = a.GetString("metrics-top-destinations");
            if (!int.TryParse(raw, out top) || top is < 0 or > 10_000)
                errors.Add($"mtasts.admin.metrics-top-destinations = \"{raw}\": out of range 0..10000");
        }
        var metrics = true;
        if (a.HasPath("metrics"))
        {
            var raw = a.GetString("metrics")?.Trim().ToLowerInvariant();
            if (raw is "on" or "true" or "yes") metrics = true;
            else if (raw is "off" or "false" or "no") metrics = false;
            else errors.Add($"mtasts.admin.metrics = \"{raw}\": expected on or off");
        }
        if (errors.Count > 0) throw new GatewayConfigException(errors);
        return new AdminOptions { Endpoints = endpoints, Token = token, Tokens = tokens, MetricsTopDestinations = top, Metrics = metrics };
    }

    /// <summary><c>tokens = [{ name = "alice", token = "…" }, { name = "bob", token-file = "/etc/mtasts/bob.token" }]</c>.</summary>
    private static List<AdminToken> NamedTokens(Config a, List<string> errors)
    {
        var result = new List<AdminToken>();
        if (!a.HasPath("tokens")) return result;
        var value = a.GetValue("tokens");
        if (value.IsEmpty || (value.Values.Count > 0 && value.Values[0] is Akka.Configuration.Hocon.HoconArray { Count: 0 })) return result;
        if (!value.IsArray())
        {
            errors.Add("mtasts.admin.tokens must be a list: [{ name = \"alice\", token-file = \"/etc/mtasts/alice.token\" }]");
            return result;
        }
        var i = 0;
        foreach (var item in value.GetArray())
        {
            var at = $"mtasts.admin.tokens[{i++}]";
            if (!item.IsObject()) { errors.Add($"{at}: must be an object {{ name = ..., token = ... or token-file = ... }}"); continue; }
            var o = item.GetObject();
            string? Str(string key) => o.Items.TryGetValue(key, out var v) && v.IsString() && v.GetString() is { Length: > 0 } t ? t.Trim() : null;
            foreach (var key in o.Items.Keys.Where(k => k is not ("name" or "token" or "token-file")))
                errors.Add($"{at}: unknown setting \"{key}\" (name, token, token-file)");
            var name = Str("name");
            if (name is null || name.Any(c => char.IsControl(c) || c == '"')) { errors.Add($"{at}.name: a name is required (no quotes or control characters)"); continue; }
            string? secret = Str("token");
            if (Str("token-file") is { } file)
            {
                if (secret is not null) { errors.Add($"{at} ({name}): set token or token-file, not both"); continue; }
                if (!File.Exists(file)) { errors.Add($"{at}.token-file ({name}): file not found: {file}"); continue; }
                secret = File.ReadAllText(file).Trim();
            }
            if (secret is null) { errors.Add($"{at} ({name}): token or token-file is required"); continue; }
            if (secret.Length < 16) { errors.Add($"{at}.token ({name}): at least 16 characters"); continue; }
            if (result.Any(t => t.Name == name)) { errors.Add($"{at}: the name \"{name}\" is used twice"); continue; }
            result.Add(new AdminToken(name, secret));
        }
        return result;
    }
}

/// <summary>A named admin token: <see cref="Name"/> appears in the operator log as who did an action.</summary>
public sealed record AdminToken(string Name, string Token)
{
    public override string ToString() => Name; // never print the secret
}
