using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

using MtaSts.Actors.IntakeMemoryBench;

namespace MtaSts.Actors.DestinationMemoryBench;

/// <summary>The gateway's live managed heap by type, read with <c>dotnet-gcdump</c> (a NuGet global tool:
/// <c>dotnet tool install -g dotnet-gcdump</c>). Collecting walks the heap after a full blocking GC the tool induces in
/// the target, so <see cref="TotalBytes"/> is live objects only; types are aggregated by name. On a heap of millions
/// of objects the tool's walk may stop short (its object count then reads 10,000,005): the per-type figures are then a
/// lower bound, <see cref="TotalBytes"/> is the GC's own figure.</summary>
internal sealed partial record HeapDump(long TotalBytes, long Objects, IReadOnlyDictionary<string, (long Bytes, long Count)> Types, double Seconds)
{
    /// <summary>dotnet-gcdump on PATH or in ~/.dotnet/tools; null when it is not installed.</summary>
    public static string? Tool()
    {
        var candidates = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Append(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools"))
            .Select(d => Path.Combine(d, "dotnet-gcdump"));
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>Collects a dump of <paramref name="pid"/> into <paramref name="file"/> and reads its per-type report.
    /// Null (with the reason in <paramref name="error"/>) when the tool failed.</summary>
    public static HeapDump? Collect(string tool, int pid, string file, out string error)
    {
        var sw = Stopwatch.StartNew();
        var (rc, output) = ChildProcess.Run(tool, ["collect", "-p", pid.ToString(CultureInfo.InvariantCulture), "-o", file], TimeSpan.FromMinutes(5));
        if (rc != 0 || !File.Exists(file))
        {
            error = $"dotnet-gcdump collect failed ({rc}): {output.Trim()}";
            return null;
        }
        var seconds = sw.Elapsed.TotalSeconds;
        (rc, output) = ChildProcess.Run(tool, ["report", file], TimeSpan.FromMinutes(5));
        if (rc != 0)
        {
            error = $"dotnet-gcdump report failed ({rc}): {output.Trim()}";
            return null;
        }
        long total = 0, objects = 0;
        var types = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n'))
        {
            if (Total().Match(line) is { Success: true } t)
            {
                var n = Num(t.Groups[1].Value);
                if (t.Groups[2].Value == "bytes") total = n;
                else objects = n;
                continue;
            }
            if (Row().Match(line) is not { Success: true } m) continue;
            // A row is (bytes of one object, objects of that size, type); arrays come in several rows (size classes,
            // "(Bytes > 10K)"). "System.Byte[] (Bytes > 10K)  [System.Private.CoreLib.dll]" → "System.Byte[]".
            var name = Suffix().Replace(m.Groups[3].Value.Trim(), "");
            var (b, c) = types.GetValueOrDefault(name);
            var count = Num(m.Groups[2].Value);
            types[name] = (b + Num(m.Groups[1].Value) * count, c + count);
        }
        error = "";
        return new HeapDump(total, objects, types, seconds);
    }

    private static long Num(string s) => long.Parse(s.Replace(",", "", StringComparison.Ordinal), CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^\s*([\d,]+)\s+GC Heap (bytes|objects)")]
    private static partial Regex Total();

    [GeneratedRegex(@"^\s*([\d,]+)\s+([\d,]+)\s+(\S.*)$")]
    private static partial Regex Row();

    [GeneratedRegex(@"\s*(\(Bytes [^)]*\))?\s*(\[[^\]]*\])?\s*$")]
    private static partial Regex Suffix();
}
