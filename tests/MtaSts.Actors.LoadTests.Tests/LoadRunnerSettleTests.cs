using MtaSts.Actors.LoadTests.Core;

namespace MtaSts.Actors.LoadTests.Tests;

/// <summary>The closed model's settle step: between the warm-up and the measured part no session sends, every warm-up
/// iteration has finished before the settle starts, and the measured part (and its duration bound) starts after it.</summary>
public sealed class LoadRunnerSettleTests
{
    private sealed class Probe
    {
        public int Active;
        public int Settling;
        public int StartedWhileSettling;
        public int ActiveAtSettleStart = -1;
    }

    private static LoadScenario Scenario(Probe p, TimeSpan settle, RunLimit limit) =>
        new("settle", async (ctx, ct) =>
        {
            if (Volatile.Read(ref p.Settling) == 1) Interlocked.Increment(ref p.StartedWhileSettling);
            Interlocked.Increment(ref p.Active);
            try { await Task.Delay(5, ct); }
            finally { Interlocked.Decrement(ref p.Active); }
            return Response.Success(100);
        }, new LoadSimulation.KeepConstant(4), TimeSpan.FromMilliseconds(200), limit)
        {
            Settle = async ct =>
            {
                p.ActiveAtSettleStart = Volatile.Read(ref p.Active);
                Volatile.Write(ref p.Settling, 1);
                await Task.Delay(settle, ct);
                Volatile.Write(ref p.Settling, 0);
            },
        };

    [Fact]
    public async Task No_session_sends_while_the_target_settles_and_the_measured_count_is_exact()
    {
        var p = new Probe();
        var runner = new LoadRunner(Scenario(p, TimeSpan.FromMilliseconds(400), new RunLimit(TimeSpan.FromSeconds(60), 200)));
        var result = await runner.RunAsync(CancellationToken.None);

        Assert.Equal(0, p.ActiveAtSettleStart);
        Assert.Equal(0, p.StartedWhileSettling);
        Assert.True(runner.Progress.WarmupDone > 0, "the warm-up ran");
        Assert.Equal(200, result.Ok);
        Assert.True(runner.Progress.SettleUs >= 400_000, $"settle took {runner.Progress.SettleUs} µs");
    }

    [Fact]
    public async Task The_duration_bound_counts_from_the_end_of_the_settle()
    {
        // A settle longer than the whole duration: counted from the end of the warm-up, nothing would be measured.
        var p = new Probe();
        var runner = new LoadRunner(Scenario(p, TimeSpan.FromMilliseconds(800), new RunLimit(TimeSpan.FromMilliseconds(300), long.MaxValue)));
        var result = await runner.RunAsync(CancellationToken.None);

        Assert.True(result.Ok > 0, "measured iterations after the settle");
        Assert.True(result.MeasureStartUs > 0);
        Assert.Equal(0, p.StartedWhileSettling);
    }
}
