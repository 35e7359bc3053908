using System.Net;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// The system under test: an SMTP relay on loopback that accepts from the generator and delivers every
/// destination domain to the receiver. Postfix, the gateway, or any relay the operator started.
/// </summary>
public interface ITarget : IAsyncDisposable
{
    string Name { get; }
    /// <summary>Whether the MTA-STS switch in <see cref="TargetSpec"/> means anything to this target.</summary>
    bool SupportsMtaSts { get; }
    IPEndPoint Endpoint { get; }
    /// <summary>Root of the process tree whose RSS/CPU is sampled; null when the target is not ours (external).</summary>
    int? RootPid { get; }

    /// <summary>Starts (or checks) the target. Returns null when ready, else why it is not available.</summary>
    Task<string?> StartAsync(TargetSpec spec, CancellationToken ct);
    Task StopAsync();
    /// <summary>Messages the target itself reports as queued, when it can tell (null otherwise).</summary>
    long? QueueDepth();
    /// <summary>Asks the target to retry deferred mail now (after receivers come back); no-op where unsupported.</summary>
    Task FlushAsync(CancellationToken ct);
    /// <summary>Free-form facts for the report (version, config highlights).</summary>
    IReadOnlyDictionary<string, string> Facts { get; }

    /// <summary>
    /// After <see cref="StopAsync"/>: what the target still holds (its queue) and what it logged about bounces, for
    /// the end-state accounting. <paramref name="ourKeys"/> are the queue keys from the 250 replies of the messages it
    /// acknowledged; held messages with other keys (DSNs, or ids the reply did not carry) are read for their
    /// X-Load-Id. Null when the target cannot tell (an external relay).
    /// </summary>
    Task<Core.TargetHoldings?> ReadHoldingsAsync(string runTag, IReadOnlySet<long> ourKeys, CancellationToken ct);
}

/// <summary>
/// What a scenario asks of the target. <see cref="Routes"/> is the MX override: destination pattern → receiver
/// endpoint ("*" = every domain). No DNS is involved, so nothing can leak off the machine.
/// <see cref="LocalMtaSts"/> (mta-sts-everywhere, both variants): the gateway gets a local DNS server and locally served
/// policies for every domain, and reaches the receiver by a host name resolved through that DNS server; only the
/// <see cref="MtaSts"/> switch differs between the off and on runs. <see cref="Metrics"/>: the gateway's
/// <c>mtasts.admin.metrics</c> (null = its default); other targets ignore it. <see cref="TlsCa"/> (`--tls`): the run's
/// test CA, which issued the receiver's certificate for <see cref="LocalMtaStsWorld.MxHost"/>; relays must verify it
/// (<see cref="TlsCaBundle"/> is its root as a PEM file). <see cref="MxRollup"/>: the gateway's
/// <c>mtasts.delivery.mx-rollup</c> (null = the shipped default); <see cref="PerMxIp"/>: its <c>limit-type = mx-ip</c>;
/// <see cref="MxRollupMaxConnections"/>: its <c>mtasts.delivery.mx-rollup-max-connections</c> (null = the shipped default).
/// </summary>
public sealed record TargetSpec(
    string WorkDirectory,
    IReadOnlyList<KeyValuePair<string, IPEndPoint>> Routes,
    IReadOnlyList<string> Domains,
    bool MtaSts,
    TimeSpan? RetryInterval,
    int DestinationConcurrency,
    int MessagesPerConnection,
    bool LocalMtaSts = false,
    bool? Metrics = null,
    MtaSts.Actors.TestInfra.Certificates.TestCertificateAuthority? TlsCa = null,
    string? TlsCaBundle = null,
    bool? MxRollup = null,
    bool PerMxIp = false,
    int? MxRollupMaxConnections = null);
