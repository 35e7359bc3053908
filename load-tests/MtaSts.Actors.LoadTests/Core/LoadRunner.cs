using System.Threading.Channels;

namespace MtaSts.Actors.LoadTests.Core;

/// <summary>Live counters the sampler and the progress line read while a run is going.</summary>
public sealed class RunProgress
{
    public long Ok;
    public long Fail;
    public long WarmupDone;
    public long Bytes;
    public long Backlog; // open model: messages due but not yet started (generator-side queue)
    public volatile bool Measuring;
    public volatile bool Finished;
    public long MeasureStartUs;
    /// <summary>Closed model with a settle step: harness µs spent between the warm-up and the measured part.</summary>
    public long SettleUs;
}

public sealed record RunnerResult(
    string Simulation,
    long MeasureStartUs,
    long MeasureEndUs,
    long Ok,
    long Fail,
    long Bytes,
    long Unsent,
    bool Saturated,
    LatencySummary Iteration,
    IReadOnlyList<StepSummary> Steps)
{
    public double Seconds => Math.Max(1e-6, (MeasureEndUs - MeasureStartUs) / 1e6);
    public double OkPerSecond => Ok / Seconds;
}

/// <summary>
/// Executes a <see cref="LoadScenario"/>: warm-up, then the measured part until the duration or the iteration
/// count is reached. Every iteration's latency lands in the "iteration" histogram, measured from its scheduled
/// time; the scenario body records finer steps itself.
/// </summary>
public sealed class LoadRunner(LoadScenario scenario)
{
    /// <summary>An open-model run may fall behind; past this many seconds of backlog it stops offering more (bounded memory).</summary>
    private const double MaxBacklogSeconds = 30;
    /// <summary>After the offering stops, how long queued open-model messages may still be sent.</summary>
    private static readonly TimeSpan OpenGrace = TimeSpan.FromSeconds(20);

    private long _measuredStarted;
    private long _lastEndUs;
    private long _endUs = long.MaxValue;
    // Settle step (closed model): sessions stop starting warm-up iterations once _holding is set, the runner waits for
    // the ones in flight (_activeWarm), runs the settle, then opens the gate into the measured part.
    private int _holding;
    private long _activeWarm;
    private readonly TaskCompletionSource _measureGate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _saturated;
    private long _unsent;

    public StepRegistry Steps { get; } = new();
    public LatencyHistogram Iteration => Steps.Get("iteration").Latency;
    public RunProgress Progress { get; } = new();

    public async Task<RunnerResult> RunAsync(CancellationToken ct)
    {
        Steps.Get("iteration");
        var startUs = Clock.NowUs();
        var warmEndUs = startUs + (long)scenario.WarmUp.TotalMicroseconds;
        var settles = scenario.Settle is not null && scenario.WarmUp > TimeSpan.Zero && scenario.Simulation is LoadSimulation.KeepConstant;
        var endUs = warmEndUs + (long)scenario.Limit.Duration.TotalMicroseconds;
        if (!settles) _endUs = endUs;
        if (scenario.WarmUp <= TimeSpan.Zero) BeginMeasuring(startUs);

        // The warm-up switch is time based so both models share it.
        using var warmCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var warmTask = scenario.WarmUp > TimeSpan.Zero
            ? Task.Run(async () =>
            {
                try
                {
                    await Clock.WaitUntilAsync(warmEndUs, warmCts.Token);
                    if (settles) await SettleAsync(warmCts.Token);
                }
                catch (OperationCanceledException) { _measureGate.TrySetCanceled(); return; }
                BeginMeasuring(Clock.NowUs());
                _measureGate.TrySetResult();
            }, CancellationToken.None)
            : Task.CompletedTask;

        try
        {
            switch (scenario.Simulation)
            {
                case LoadSimulation.KeepConstant closed:
                    await RunClosedAsync(closed, ct);
                    break;
                case LoadSimulation.Inject open:
                    await RunOpenAsync(open, warmEndUs, endUs, ct);
                    break;
                default:
                    throw new NotSupportedException(scenario.Simulation.GetType().Name);
            }
        }
        finally
        {
            warmCts.Cancel();
            await warmTask;
            Progress.Finished = true;
        }

        var start = Progress.MeasureStartUs == 0 ? startUs : Progress.MeasureStartUs;
        var last = Interlocked.Read(ref _lastEndUs);
        return new RunnerResult(scenario.Simulation.Describe(), start, Math.Max(last, start),
            Interlocked.Read(ref Progress.Ok), Interlocked.Read(ref Progress.Fail), Interlocked.Read(ref Progress.Bytes),
            _unsent, _saturated, Iteration.Summary(), Steps.All.Select(s => s.Summary()).ToArray());
    }

    private void BeginMeasuring(long nowUs)
    {
        // With a settle step the duration bound counts from here, not from the end of the warm-up.
        if (Interlocked.Read(ref _endUs) == long.MaxValue) Interlocked.Exchange(ref _endUs, nowUs + (long)scenario.Limit.Duration.TotalMicroseconds);
        Progress.MeasureStartUs = nowUs;
        Progress.Measuring = true;
    }

    /// <summary>Stops the sessions from starting warm-up iterations, waits for those in flight, then runs the
    /// scenario's settle (the target finishes the warm-up mail), so every target starts the measured part from the
    /// same place whatever its intake took during the warm-up.</summary>
    private async Task SettleAsync(CancellationToken ct)
    {
        var t0 = Clock.NowUs();
        Interlocked.Exchange(ref _holding, 1); // full fence: a session that raced past the check is counted in _activeWarm
        while (Interlocked.Read(ref _activeWarm) > 0) await Task.Delay(5, ct);
        await scenario.Settle!(ct);
        Progress.SettleUs = Clock.NowUs() - t0;
    }

    private long _next;

    private Task RunOneAsync(ScenarioContext ctx, bool measuring, CancellationToken ct)
    {
        ctx.InvocationNumber = Interlocked.Increment(ref _next);
        ctx.Measuring = measuring;
        ctx.ScheduledUs = Clock.NowUs();
        return ExecuteAsync(ctx, ct);
    }

    private async Task RunClosedAsync(LoadSimulation.KeepConstant sim, CancellationToken ct)
    {
        var workers = Enumerable.Range(0, sim.Copies).Select(copy => Task.Run(async () =>
        {
            var ctx = new ScenarioContext(Steps, copy);
            try
            {
                while (!ct.IsCancellationRequested && Clock.NowUs() < Interlocked.Read(ref _endUs))
                {
                    var measuring = Progress.Measuring;
                    if (!measuring)
                    {
                        // Counted first, then the hold checked: the settle waits for every warm-up iteration started.
                        Interlocked.Increment(ref _activeWarm);
                        if (Volatile.Read(ref _holding) == 1)
                        {
                            Interlocked.Decrement(ref _activeWarm);
                            try { await _measureGate.Task.WaitAsync(ct); } catch (OperationCanceledException) { break; }
                            continue;
                        }
                        try { await RunOneAsync(ctx, false, ct); }
                        finally { Interlocked.Decrement(ref _activeWarm); }
                        continue;
                    }
                    if (Interlocked.Increment(ref _measuredStarted) > scenario.Limit.MaxIterations) break;
                    await RunOneAsync(ctx, true, ct);
                }
            }
            finally
            {
                if (scenario.CleanCopy is not null) await scenario.CleanCopy(ctx);
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(workers);
    }

    public const string StepSessionWait = "session_wait";

    private async Task RunOpenAsync(LoadSimulation.Inject sim, long warmEndUs, long endUs, CancellationToken ct)
    {
        var channel = Channel.CreateUnbounded<(long Id, long DueUs, bool Measuring)>(new UnboundedChannelOptions { SingleWriter = true });
        using var workerCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var workers = Enumerable.Range(0, sim.MaxSessions).Select(copy => Task.Run(async () =>
        {
            var ctx = new ScenarioContext(Steps, copy);
            try
            {
                await foreach (var job in channel.Reader.ReadAllAsync(workerCts.Token))
                {
                    Interlocked.Decrement(ref Progress.Backlog);
                    ctx.InvocationNumber = job.Id;
                    ctx.ScheduledUs = job.DueUs;
                    ctx.Measuring = job.Measuring;
                    // How long the message waited for a free session: the generator's own queue, part of the latency
                    // counted from the scheduled time (a stall of the target fills all sessions, and the next ones wait).
                    ctx.Step(StepSessionWait, Math.Max(0, Clock.NowUs() - job.DueUs));
                    await ExecuteAsync(ctx, workerCts.Token);
                }
            }
            catch (OperationCanceledException) { }
            finally
            {
                if (scenario.CleanCopy is not null) await scenario.CleanCopy(ctx);
            }
        }, CancellationToken.None)).ToArray();

        var intervalUs = 1_000_000.0 / sim.RatePerSecond;
        var t0 = Clock.NowUs();
        // The warm-up ramps the offered rate linearly from 0 to the full rate: a freshly started target (tier-0 code,
        // small heap) is not handed the full rate cold, whose backlog would otherwise carry into the measured part.
        // Message i of the ramp is due at sqrt(2·W·i/R); after it, one every 1/R. The measured part is unchanged.
        var warmUs = (double)Math.Max(0, warmEndUs - t0);
        var rampCount = (long)(sim.RatePerSecond * warmUs / 1e6 / 2);
        long i = 0, measured = 0;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var due = i < rampCount
                    ? t0 + (long)Math.Sqrt(2 * warmUs * i * intervalUs)
                    : t0 + (long)(warmUs + (i - rampCount) * intervalUs);
                if (due >= endUs) break;
                var measuring = due >= warmEndUs;
                if (measuring && ++measured > scenario.Limit.MaxIterations) break;
                if (due > Clock.NowUs()) await Clock.WaitUntilAsync(due, ct);
                if (Interlocked.Increment(ref Progress.Backlog) > sim.RatePerSecond * MaxBacklogSeconds)
                {
                    // The target can't keep up; offering more would only grow our memory. Record it and stop.
                    Interlocked.Decrement(ref Progress.Backlog);
                    _saturated = true;
                    break;
                }
                channel.Writer.TryWrite((++i, due, measuring));
            }
        }
        catch (OperationCanceledException) { }
        channel.Writer.TryComplete();

        var all = Task.WhenAll(workers);
        if (await Task.WhenAny(all, Task.Delay(OpenGrace, CancellationToken.None)) != all)
        {
            workerCts.Cancel();
        }
        await all;
        while (channel.Reader.TryRead(out _)) _unsent++;
    }

    private async Task ExecuteAsync(ScenarioContext ctx, CancellationToken ct)
    {
        Response response;
        try
        {
            response = await scenario.Run(ctx, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            response = Response.Fail(ex.GetType().Name);
        }
        var now = Clock.NowUs();
        ctx.Step("iteration", now - ctx.ScheduledUs, response.Ok, response.StatusCode);
        if (!ctx.Measuring)
        {
            Interlocked.Increment(ref Progress.WarmupDone);
            return;
        }
        InterlockedMax(ref _lastEndUs, now);
        if (response.Ok)
        {
            Interlocked.Increment(ref Progress.Ok);
            Interlocked.Add(ref Progress.Bytes, response.SizeBytes);
        }
        else Interlocked.Increment(ref Progress.Fail);
    }

    internal static void InterlockedMax(ref long target, long value)
    {
        var current = Interlocked.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current) return;
            current = seen;
        }
    }
}
