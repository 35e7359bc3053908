using System.Collections.Concurrent;

namespace MtaSts.Actors.LoadTests.Core;

/// <summary>Per-step statistics: ok/fail counts by status code and a latency histogram.</summary>
public sealed class StepStats(string name)
{
    private long _ok;
    private long _fail;
    private readonly ConcurrentDictionary<string, long> _failCodes = new();

    public string Name { get; } = name;
    public LatencyHistogram Latency { get; } = new();
    public void Record(long elapsedUs, bool measuring, bool ok, string? failCode)
    {
        Latency.Record(elapsedUs, measuring);
        if (!measuring) return;
        if (ok) Interlocked.Increment(ref _ok);
        else
        {
            Interlocked.Increment(ref _fail);
            _failCodes.AddOrUpdate(failCode ?? "error", 1, (_, v) => v + 1);
        }
    }

    public StepSummary Summary() => new(Name, Interlocked.Read(ref _ok), Interlocked.Read(ref _fail),
        new SortedDictionary<string, long>(_failCodes), Latency.Summary());
}

public sealed record StepSummary(string Name, long Ok, long Fail, SortedDictionary<string, long> FailCodes, LatencySummary Latency);

public sealed class StepRegistry
{
    private readonly ConcurrentDictionary<string, StepStats> _steps = new();

    public StepStats Get(string name) => _steps.GetOrAdd(name, n => new StepStats(n));

    public IReadOnlyCollection<StepStats> All => _steps.Values.OrderBy(s => s.Name, StringComparer.Ordinal).ToArray();
}
