using MtaSts.Actors.Configuration;
using MtaSts.Actors.Smtp.Outbound;

namespace MtaSts.Actors.Engine.Delivery;

/// <summary>The <c>mtasts.delivery</c> section: outbound SMTP timeouts (defaults: <see cref="OutboundOptions"/>'s), how
/// long an idle connection is kept (default: <see cref="EngineTuning"/>'s) and the next-hop override.</summary>
public sealed record DeliveryOptions
{
    private static readonly OutboundOptions Outbound = new();

    public TimeSpan ConnectTimeout { get; init; } = Outbound.ConnectTimeout;
    public TimeSpan CommandTimeout { get; init; } = Outbound.CommandTimeout;
    public TimeSpan DataTimeout { get; init; } = Outbound.DataTimeout;
    public TimeSpan ConnectionIdleTime { get; init; } = new EngineTuning().ConnectionIdleTime;

    /// <summary><c>max-connections</c>: outbound connections this node may have at once, over all destinations
    /// (<see cref="ConnectionBudget"/>). A destination's own limit (max-concurrent-connections) applies within it.</summary>
    public int MaxConnections { get; init; } = 1000;

    /// <summary><c>mx-rollup</c>: an idle session may carry mail for other destinations served by the same MX when it
    /// satisfies their security requirements (README "MX roll-up and per-MX-IP limits").</summary>
    public bool MxRollup { get; init; } = true;

    /// <summary><c>mx-rollup-max-connections</c>: with roll-up, connections of this node at one MX address (and port) at
    /// once, over all destinations; a destination that needs one more there waits for a session parked there that
    /// satisfies its plan, or for a place (0: no such limit). Postfix shares one connection cache per next hop the same
    /// way. Measured (many-domains-tls): one busy domain after another opened its own 20, up to ~160 at the receiver.</summary>
    public int MxRollupMaxConnections { get; init; } = 20;

    /// <summary>domain (or "*") → next hops instead of the MX lookup. Test and private deployments only.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<HostPort>> MxOverride { get; init; } = new Dictionary<string, IReadOnlyList<HostPort>>();

    /// <summary>The next hops <see cref="MxOverride"/> gives a domain (its own entry, else "*"); null when none.</summary>
    public Func<string, IReadOnlyList<HostPort>?>? MxOverrideMap() => MxOverride.Count == 0 ? null
        : domain => MxOverride.TryGetValue(domain, out var hops) ? hops : MxOverride.TryGetValue("*", out var all) ? all : null;

    /// <summary>Reads <c>mtasts.delivery { connect-timeout, command-timeout, data-timeout, connection-idle-time,
    /// max-connections, mx-rollup, mx-rollup-max-connections, mx-override }</c>; every bad value is an error naming its key.</summary>
    public static DeliveryOptions Read(ConfigSection s)
    {
        var d = new DeliveryOptions();
        var mxOverride = new Dictionary<string, IReadOnlyList<HostPort>>(StringComparer.OrdinalIgnoreCase);
        foreach (var (domain, hops) in s.Entries("mx-override"))
        {
            try { mxOverride[domain] = hops.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(HostPort.Parse).ToArray(); }
            catch (Exception ex) when (ex is FormatException or ArgumentException or OverflowException) { s.Error($"{s.Path}.mx-override.\"{domain}\": {ex.Message}"); }
        }
        // Moved to the destination profiles (one value per destination, inherited from `default`): an old global
        // setting left in place would otherwise be silently ignored.
        if (s.Has("max-recipients-per-transaction"))
            s.Error($"{s.Path}.max-recipients-per-transaction is no longer a gateway setting: set " +
                    "max-recipients-per-transaction in a destination profile (mtasts.destinations.default for every domain)");
        return new DeliveryOptions
        {
            ConnectTimeout = s.Duration("connect-timeout", d.ConnectTimeout),
            CommandTimeout = s.Duration("command-timeout", d.CommandTimeout),
            DataTimeout = s.Duration("data-timeout", d.DataTimeout),
            ConnectionIdleTime = s.Duration("connection-idle-time", d.ConnectionIdleTime),
            MxRollup = s.Bool("mx-rollup", d.MxRollup),
            MxRollupMaxConnections = s.Int("mx-rollup-max-connections", d.MxRollupMaxConnections, 0, 1_000_000),
            MaxConnections = s.Int("max-connections", d.MaxConnections, 1, 1_000_000),
            MxOverride = mxOverride,
        };
    }
}
