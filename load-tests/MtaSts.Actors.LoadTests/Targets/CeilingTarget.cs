using System.Net;
using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// The raw ceiling (--target ceiling): no relay at all. The generator submits straight to the receiver, like
/// smtp-source → smtp-sink, with the same client, receiver, message size, sessions and recipients as the relay runs of
/// the same scenario. What it measures is the most this box moves with this generator and this receiver: a relay in
/// between can at best match it, so "gateway ÷ ceiling" is the share of the harness-bound maximum the gateway reaches.
/// Not meaningful for a scenario that needs a queue (backlog: the receiver is down while mail is injected) or retries
/// (hostile-receiver: the generator does not retry, so 4xx/5xx become submit failures instead of deliveries).
/// </summary>
public sealed class CeilingTarget(IPEndPoint receiver) : ITarget
{
    public const string TargetName = "ceiling";
    private readonly Dictionary<string, string> _facts = new()
    {
        ["path"] = "generator → receiver directly (no relay): the harness-bound maximum for this traffic",
    };

    public string Name => TargetName;
    public bool SupportsMtaSts => false;
    public IPEndPoint Endpoint { get; } = Loopback.Require(receiver);
    public int? RootPid => null;
    public IReadOnlyDictionary<string, string> Facts => _facts;

    public async Task<string?> StartAsync(TargetSpec spec, CancellationToken ct) =>
        await Loopback.WaitForListenerAsync(Endpoint, TimeSpan.FromSeconds(5), ct) ? null : $"ceiling: the receiver does not listen on {Endpoint}";

    public Task StopAsync() => Task.CompletedTask;
    public long? QueueDepth() => null;
    public Task FlushAsync(CancellationToken ct) => Task.CompletedTask;

    /// <summary>Nothing in between: a message is either at the receiver or was refused to the generator.</summary>
    public Task<TargetHoldings?> ReadHoldingsAsync(string runTag, IReadOnlySet<long> ourKeys, CancellationToken ct) =>
        Task.FromResult<TargetHoldings?>(new TargetHoldings { Source = "no relay: nothing can be held in between" });

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
