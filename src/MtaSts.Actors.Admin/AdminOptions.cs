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

    /// <summary>Destinations that get their own label in per-destination metrics; the rest count as "other".</summary>
    public int MetricsTopDestinations { get; init; } = 50;

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
        // A token-less admin endpoint is only acceptable where only this host can reach it.
        if (token is null && endpoints.FirstOrDefault(e => !IPAddress.IsLoopback(e.Address)) is { } open)
            errors.Add($"mtasts.admin.endpoints: {open} is not a loopback address; set mtasts.admin.token or token-file");

        int top = 50;
        if (a.HasPath("metrics-top-destinations"))
        {
            var raw = a.GetString("metrics-top-destinations");
            if (!int.TryParse(raw, out top) || top is < 0 or > 10_000)
                errors.Add($"mtasts.admin.metrics-top-destinations = \"{raw}\": out of range 0..10000");
        }
        if (errors.Count > 0) throw new GatewayConfigException(errors);
        return new AdminOptions { Endpoints = endpoints, Token = token, MetricsTopDestinations = top };
    }
}
