namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// How load is offered. Shaped after NBomber's simulations so a scenario can later be ported 1:1:
/// <see cref="KeepConstant"/> ≈ Simulation.KeepConstant(copies, during) (closed model),
/// <see cref="Inject"/> ≈ Simulation.Inject(rate, interval, during) (open model).
/// </summary>
public abstract record LoadSimulation
{
    /// <summary>Closed model: <paramref name="Copies"/> sessions, each sends its next message when the previous one got its reply.</summary>
    public sealed record KeepConstant(int Copies) : LoadSimulation
    {
        public override string Describe() => $"closed: {Copies} concurrent sessions";
    }

    /// <summary>
    /// Open model: messages are scheduled at a fixed rate whatever the server does; up to <paramref name="MaxSessions"/>
    /// sessions carry them. Latency is measured from the *scheduled* time, so a stalled server shows up as latency
    /// instead of silently lowering the offered load (coordinated omission).
    /// </summary>
    public sealed record Inject(double RatePerSecond, int MaxSessions) : LoadSimulation
    {
        public override string Describe() => $"open: {RatePerSecond:0.#} msg/s over ≤ {MaxSessions} sessions";
    }

    public abstract string Describe();
}

/// <summary>When a run stops: whichever of the bounds is reached first. Both are always finite.</summary>
public sealed record RunLimit(TimeSpan Duration, long MaxIterations);

/// <summary>Result of one iteration, like NBomber's Response.Ok()/Response.Fail().</summary>
public readonly record struct Response(bool Ok, string? StatusCode, long SizeBytes)
{
    public static Response Success(long sizeBytes) => new(true, null, sizeBytes);
    public static Response Fail(string statusCode) => new(false, statusCode, 0);
}

/// <summary>What an iteration sees. <see cref="CopyState"/> lives as long as the copy (e.g. an open SMTP connection).</summary>
public sealed class ScenarioContext
{
    private readonly StepRegistry _steps;

    internal ScenarioContext(StepRegistry steps, int copyNumber)
    {
        _steps = steps;
        CopyNumber = copyNumber;
    }

    public int CopyNumber { get; }
    public long InvocationNumber { get; internal set; }
    /// <summary>When this iteration was due (open model) or started (closed model), harness µs.</summary>
    public long ScheduledUs { get; internal set; }
    /// <summary>False during warm-up: the iteration runs, its numbers go to the time series only.</summary>
    public bool Measuring { get; internal set; }
    public object? CopyState { get; set; }

    /// <summary>Records one step's latency (NBomber: Step.Run). Steps are reported separately from the whole iteration.</summary>
    public void Step(string name, long elapsedUs, bool ok = true, string? failCode = null) =>
        _steps.Get(name).Record(elapsedUs, Measuring, ok, failCode);
}

/// <summary>
/// A named scenario: init, one iteration, clean, warm-up, simulation and limit. NBomber's
/// Scenario.Create(name, run).WithInit().WithClean().WithWarmUpDuration().WithLoadSimulations() maps onto this.
/// </summary>
public sealed record LoadScenario(
    string Name,
    Func<ScenarioContext, CancellationToken, Task<Response>> Run,
    LoadSimulation Simulation,
    TimeSpan WarmUp,
    RunLimit Limit)
{
    /// <summary>Called once per copy when it stops (close connections).</summary>
    public Func<ScenarioContext, Task>? CleanCopy { get; init; }

    /// <summary>Closed model: called once between the warm-up and the measured part, while no session sends (waits
    /// until the target has finished the warm-up mail). The measured part, and its duration bound, start after it.</summary>
    public Func<CancellationToken, Task>? Settle { get; init; }
}
