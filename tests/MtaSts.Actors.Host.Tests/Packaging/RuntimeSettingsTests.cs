using System.Text.RegularExpressions;

namespace MtaSts.Actors.Host.Tests.Packaging;

/// <summary>The systemd unit and the container image start the gateway with the same runtime settings (DOTNET_*
/// variables, e.g. the gen0 budget that only the environment can set): a memory or GC figure measured under one holds
/// for the other, and the load-test harness (which applies the unit's lines) measures what is shipped.</summary>
public sealed partial class RuntimeSettingsTests
{
    private static string Packaging()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MtaSts.Actors.sln")))
                return Path.Combine(d.FullName, "src", "MtaSts.Actors.Host", "packaging");
        throw new DirectoryNotFoundException("repository root (MtaSts.Actors.sln) not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void The_unit_and_the_container_set_the_same_DOTNET_variables()
    {
        var unit = File.ReadAllLines(Path.Combine(Packaging(), "mtasts-gateway.service"))
            .Select(l => l.Trim()).Where(l => l.StartsWith("Environment=DOTNET_", StringComparison.Ordinal))
            .Select(l => l["Environment=".Length..]).Order(StringComparer.Ordinal).ToList();
        var envLine = File.ReadAllLines(Path.Combine(Packaging(), "Containerfile")).Single(l => l.StartsWith("ENV ", StringComparison.Ordinal));
        var container = Assignment().Matches(envLine).Select(m => m.Value)
            .Where(a => a.StartsWith("DOTNET_", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();

        Assert.Contains("DOTNET_GCgen0size=0x1000000", unit);
        Assert.Equal(unit, container);
    }

    [GeneratedRegex(@"[A-Za-z_][A-Za-z0-9_]*=\S+")]
    private static partial Regex Assignment();
}
