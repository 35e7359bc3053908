using System.Globalization;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>Reading a running gateway's admin endpoint from outside: where it listens (the line the gateway logs at
/// start) and its Prometheus text. Shared by the load-test harness and DestinationMemoryBench (linked source).</summary>
internal static class GatewayAdmin
{
    /// <summary>The admin base URL from "Admin endpoint on http://127.0.0.1:38765/ (loopback, no token)", looked for in
    /// the log's first 200 lines (it is written at start); null when absent.</summary>
    public static string? Url(string mailLog)
    {
        using var r = new StreamReader(new FileStream(mailLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        for (var i = 0; i < 200 && r.ReadLine() is { } line; i++)
            if (line.IndexOf("Admin endpoint on ", StringComparison.Ordinal) is var at and >= 0)
                return line[(at + 18)..].Split([' ', ','])[0].TrimEnd('/') + "/";
        return null;
    }

    /// <summary>Prometheus text exposition → series (name with its labels, as written) → value.</summary>
    public static Dictionary<string, double> ParseMetrics(string text)
    {
        var v = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            var sp = line.LastIndexOf(' ');
            if (line.StartsWith('#') || sp <= 0) continue;
            if (double.TryParse(line.AsSpan(sp + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) v[line[..sp]] = d;
        }
        return v;
    }

    /// <summary>One line on the gateway's runtime from its metrics: GC collections per generation, GC pause time, lock
    /// contentions, threads, and its own share of the accept latency (<see cref="WaitQuantiles"/>).</summary>
    public static string RuntimeLine(IReadOnlyDictionary<string, double> v)
    {
        string G(string key, string format = "0") => v.TryGetValue(key, out var d) ? d.ToString(format, CultureInfo.InvariantCulture) : "?";
        return $"GCs gen0/1/2 {G("dotnet_collection_count_total{generation=\"0\"}")}/{G("dotnet_collection_count_total{generation=\"1\"}")}/" +
               $"{G("dotnet_collection_count_total{generation=\"2\"}")}, GC pause {G("dotnet_gc_pause_seconds_total", "0.00")} s, " +
               $"lock contentions {G("dotnet_monitor_lock_contentions_total")}, threads {G("process_num_threads")} (pool {G("dotnet_threadpool_threads")})" +
               WaitQuantiles(v);
    }

    /// <summary>The gateway's own share of the accept latency, from its <c>mtasts_accept_commit_seconds</c> histogram
    /// (final dot → 250: spool append and group-commit fsync), and how long its process and thread pool made work wait
    /// (<c>mtasts_process_stall_seconds</c>, <c>mtasts_threadpool_lag_seconds</c>, sampled every 10 ms). Against the
    /// client-side accept latency it splits the tail into the gateway's commit, its runtime and everything else.</summary>
    public static string WaitQuantiles(IReadOnlyDictionary<string, double> metrics)
    {
        var commit = Quantiles(metrics, "mtasts_accept_commit_seconds", out var total);
        var text = commit is null ? "" : $"; accept commit (final dot → 250, gateway side) {commit} over {total.ToString("0", CultureInfo.InvariantCulture)}";
        if (Quantiles(metrics, "mtasts_process_stall_seconds", out _) is { } stall) text += $"; process stalls {stall}";
        if (Quantiles(metrics, "mtasts_threadpool_lag_seconds", out _) is { } lag) text += $"; thread-pool lag {lag}";
        return text;
    }

    /// <summary>"p50 ≤ 4 ms, p99 ≤ 16 ms, max ≤ 64 ms" from a Prometheus histogram: each as the upper bound of the bucket
    /// that holds it (buckets double from 0.5 ms, so "≤ 4 ms" means between 2 and 4 ms); null when it has no samples.</summary>
    public static string? Quantiles(IReadOnlyDictionary<string, double> metrics, string histogram, out double total)
    {
        var prefix = histogram + "_bucket{le=\"";
        var buckets = metrics.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
            .Select(kv => (Le: kv.Key[prefix.Length..^2], Count: kv.Value))
            .Select(b => (Le: b.Le == "+Inf" ? double.PositiveInfinity : double.Parse(b.Le, CultureInfo.InvariantCulture), b.Count))
            .OrderBy(b => b.Le).ToList();
        total = buckets.Count == 0 ? 0 : buckets[^1].Count;
        if (total <= 0) return null;
        var n = total;
        string At(double q)
        {
            var (le, _) = buckets.First(b => b.Count >= q * n);
            return double.IsPositiveInfinity(le) ? $"> {(buckets[^2].Le * 1000).ToString("0.#", CultureInfo.InvariantCulture)}"
                                                 : "≤ " + (le * 1000).ToString("0.#", CultureInfo.InvariantCulture);
        }
        return $"p50 {At(0.5)} ms, p99 {At(0.99)} ms, p99.9 {At(0.999)} ms, max {At(1)} ms";
    }
}
