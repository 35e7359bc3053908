using System.Text.Json;
using System.Text.Json.Serialization;

namespace MtaSts.Actors.LoadTests.Reports;

/// <summary>Writes report.json, report.md and report.html into the run's result directory.</summary>
public static class ReportWriter
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static async Task WriteAsync(RunReport report, string dir)
    {
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "report.json"), JsonSerializer.Serialize(report, Json));
        await File.WriteAllTextAsync(Path.Combine(dir, "report.md"), MarkdownReport.Render(report));
        await File.WriteAllTextAsync(Path.Combine(dir, "report.html"), HtmlReport.Render(report));
    }
}
