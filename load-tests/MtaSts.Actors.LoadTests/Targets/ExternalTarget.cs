using System.Net;
using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// Any relay already listening on loopback (--target 127.0.0.1:2525). The harness can't configure it, so the
/// operator must route every destination to the receiver port the run prints (--sink-port makes it fixed).
/// Optionally --target-pid names the process whose RSS/CPU should be sampled.
/// </summary>
public sealed class ExternalTarget(IPEndPoint endpoint, int? pid) : ITarget
{
    private readonly Dictionary<string, string> _facts = new();

    public string Name => $"external {Endpoint}";
    public bool SupportsMtaSts => false;
    public IPEndPoint Endpoint { get; } = Loopback.Require(endpoint);
    public int? RootPid => pid;
    public IReadOnlyDictionary<string, string> Facts => _facts;

    public async Task<string?> StartAsync(TargetSpec spec, CancellationToken ct)
    {
        if (!await Loopback.WaitForListenerAsync(Endpoint, TimeSpan.FromSeconds(3), ct))
            return $"nothing listens on {Endpoint}";
        _facts["routing"] = "configured outside the harness: route every destination to " + string.Join(", ", spec.Routes.Select(r => $"{r.Key} → {r.Value}"));
        return null;
    }

    public Task StopAsync() => Task.CompletedTask;
    public long? QueueDepth() => null;
    public Task FlushAsync(CancellationToken ct) => Task.CompletedTask;
    public Task<TargetHoldings?> ReadHoldingsAsync(string runTag, IReadOnlySet<long> ourKeys, CancellationToken ct) => Task.FromResult<TargetHoldings?>(null);
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
