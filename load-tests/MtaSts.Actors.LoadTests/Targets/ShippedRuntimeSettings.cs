namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// The runtime settings the gateway ships with: the <c>Environment=DOTNET_…</c> lines of its systemd unit
/// (<c>src/MtaSts.Actors.Host/packaging/mtasts-gateway.service</c>; the Containerfile sets the same). Some GC knobs
/// (<c>DOTNET_GCgen0size</c>) are read from the environment only, not from runtimeconfig.json, so the harness applies
/// them as the unit does: a gateway under test runs as it would in production.
/// </summary>
public static class ShippedRuntimeSettings
{
    public static string UnitFile(string repoRoot) =>
        Path.Combine(repoRoot, "src", "MtaSts.Actors.Host", "packaging", "mtasts-gateway.service");

    /// <summary>Name → value of every <c>Environment=DOTNET_NAME=VALUE</c> line (empty when the unit is missing).</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Read(string repoRoot)
    {
        var file = UnitFile(repoRoot);
        return File.Exists(file) ? Parse(File.ReadAllLines(file)) : [];
    }

    public static IReadOnlyList<KeyValuePair<string, string>> Parse(IEnumerable<string> unitLines)
    {
        var result = new List<KeyValuePair<string, string>>();
        foreach (var raw in unitLines)
        {
            var line = raw.Trim();
            if (!line.StartsWith("Environment=DOTNET_", StringComparison.Ordinal)) continue;
            var assignment = line["Environment=".Length..];
            var eq = assignment.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0) result.Add(new(assignment[..eq], assignment[(eq + 1)..]));
        }
        return result;
    }
}
