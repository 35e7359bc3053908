using MtaSts.Actors.LoadTests.Core;
using MtaSts.Actors.LoadTests.Receivers;

namespace MtaSts.Actors.LoadTests.Reports;

/// <summary>Everything one invocation measured; serialised as report.json and rendered as report.md/report.html.</summary>
public sealed record RunReport(
    string Scenario,
    string Description,
    DateTimeOffset StartedAt,
    MachineInfo Machine,
    IReadOnlyDictionary<string, string> Settings,
    IReadOnlyList<TargetRunResult> Runs,
    IReadOnlyList<Comparison> Comparisons,
    IReadOnlyList<string> Notes)
{
    /// <summary>/proc/loadavg (1, 5, 15 min) when the scenario started and ended: how busy the shared box was.</summary>
    public string LoadAverageStart { get; init; } = "";
    public string LoadAverageEnd { get; init; } = "";
    public DateTimeOffset FinishedAt { get; init; }
}

public sealed record MachineInfo(int Cores, long MemoryMb, string Kernel, string DotnetVersion, string GitSha, string FileSystem, string Host);

public sealed record TargetRunResult
{
    public required string Target { get; init; }
    public required string Variant { get; init; }
    public bool MtaSts { get; init; }
    /// <summary>mtasts.admin.metrics of a gateway run (null: the default, or a target without the switch).</summary>
    public bool? Metrics { get; init; }
    /// <summary>Set when the target could not be started ("target not available yet: ..."); the rest is empty then.</summary>
    public string? NotAvailable { get; init; }
    /// <summary>The run ended with an exception in the harness itself (NotAvailable says which).</summary>
    public bool HarnessError { get; init; }
    public IReadOnlyDictionary<string, string> Facts { get; init; } = new Dictionary<string, string>();
    public string Simulation { get; init; } = "";
    public string Receiver { get; init; } = "";
    public long Accepted { get; init; }
    public long Failed { get; init; }
    public IReadOnlyDictionary<string, long> FailCodes { get; init; } = new Dictionary<string, long>();
    public long Unsent { get; init; }
    public bool Saturated { get; init; }
    public double AcceptSeconds { get; init; }
    public double AcceptRate { get; init; }
    public double AcceptMegabytesPerSecond { get; init; }
    public long Delivered { get; init; }
    public double DeliverySeconds { get; init; }
    public double EndToEndRate { get; init; }
    /// <summary>Closed model: seconds between the warm-up and the measured part while the target finished the warm-up
    /// mail, and how many warm-up messages were still unfinished when the measured part began (0 = settled).</summary>
    public double? SettleSeconds { get; init; }
    public long? SettleUnresolved { get; init; }
    public long Duplicates { get; init; }
    public long NotArrived { get; init; }
    public long ArrivedNotAccepted { get; init; }
    public long ForeignArrivals { get; init; }
    public LatencySummary AcceptLatency { get; init; } = LatencySummary.Empty;
    public LatencySummary EndToEndLatency { get; init; } = LatencySummary.Empty;
    public IReadOnlyList<StepSummary> Steps { get; init; } = [];
    public ReceiverSummary? ReceiverStats { get; init; }
    public ResourceSummary Resources { get; init; } = new(0, 0, 0, 0, 0, null, 0, 0);
    public BacklogSummary? Backlog { get; init; }
    /// <summary>While the generator sent (measured part): how late a 1 ms sleeper in the harness woke (µs,
    /// <see cref="HiccupMeter"/>), and the harness's own GC pause time.</summary>
    public LatencySummary HarnessStalls { get; init; } = LatencySummary.Empty;
    public double HarnessGcPauseMs { get; init; }
    /// <summary>End state of every message the target acknowledged (delivered, bounced, still queued or LOST).</summary>
    public EndStateSummary? EndState { get; init; }
    public IReadOnlyList<TimeSample> Series { get; init; } = [];
    /// <summary>accept-latency, on the open run: the maximum rate the closed run found and what was offered.</summary>
    public OpenLatencyProbe? OpenLatency { get; init; }
}

/// <param name="MaxAcceptRate">Accept msg/s of the closed run against the same target (the maximum it took).</param>
/// <param name="OfferedRate">Fraction × maximum: the open model's schedule.</param>
public sealed record OpenLatencyProbe(double MaxAcceptRate, double Fraction, double OfferedRate, int Sessions, double TargetP99Ms)
{
    /// <summary>Below this share of the offered rate the open run fell behind its schedule: its latency is mostly the
    /// queue that built up, not the accept path, so no p99 verdict is given.</summary>
    public const double SustainedShare = 0.95;

    public bool Sustained(TargetRunResult run) => !run.Saturated && run.Unsent == 0 && run.AcceptRate >= SustainedShare * OfferedRate;

    public string NotSustainedText(TargetRunResult run) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"NOT SUSTAINED: accepted {run.AcceptRate:0} of {OfferedRate:0} msg/s offered ({100 * run.AcceptRate / Math.Max(1e-9, OfferedRate):0} %{(run.Saturated ? ", saturated" : "")}{(run.Unsent > 0 ? $", {run.Unsent} unsent" : "")}); the latency is queueing behind the schedule, no p99 verdict");
}

/// <summary>Target process tree (RSS/PSS from /proc) and the harness itself, so the generator's share of the 2 cores is visible.</summary>
public sealed record ResourceSummary(double PeakRssMb, double PeakPssMb, double MeanCpuPercent, double CpuSeconds, double CpuMsPerMessage, long? PeakQueue, double HarnessPeakRssMb, double HarnessMeanCpuPercent);

public sealed record BacklogSummary(long Queued, double InjectSeconds, double RssBeforeMb, double RssQueuedMb, double PssBeforeMb, double PssQueuedMb, double BytesPerQueuedMessage, double SpoolBytesPerQueuedMessage, long? TargetQueueAtRelease, double DrainSeconds, double DrainRate, long DeliveredAfterRelease);

public sealed record TimeSample(
    double T, string Phase, double AcceptedPerSec, double DeliveredPerSec, double FailedPerSec,
    double AcceptP50Ms, double AcceptP99Ms, double E2eP50Ms, double E2eP99Ms,
    long InFlight, long? TargetQueue, double TargetRssMb, double TargetPssMb, double TargetCpuPercent,
    double HarnessRssMb, double HarnessCpuPercent, long GeneratorBacklog);

public sealed record Comparison(string Metric, string Numerator, string Denominator, double NumeratorValue, double DenominatorValue)
{
    public double Ratio => DenominatorValue == 0 ? double.NaN : NumeratorValue / DenominatorValue;
}
