using System.Globalization;
using MtaSts.Actors.LoadTests.Core;
using MtaSts.Actors.LoadTests.Receivers;
using MtaSts.Actors.LoadTests.Reports;
using MtaSts.Actors.LoadTests.Targets;

namespace MtaSts.Actors.LoadTests.Scenarios;

/// <summary>
/// Once a second: throughput deltas, interval latency percentiles, in-flight count, target queue depth and
/// the target's RSS/PSS/CPU from /proc. Also writes the live progress line (one rewritten line on a terminal,
/// a line every 5 s otherwise so CI logs stay short).
/// </summary>
public sealed class Sampler(string label, LoadRunner runner, DeliveryLedger ledger, IReceiver receiver, ITarget target)
{
    private readonly List<TimeSample> _series = [];
    private readonly ProcessTreeSampler _self = new(Environment.ProcessId, includeDescendants: false);
    private ProcessTreeSampler? _targetProc;
    private double _cpuStart = -1;
    private readonly bool _tty = !Console.IsErrorRedirected;

    public volatile string Phase = "start";
    public double LastTargetRssMb { get; private set; }
    public double LastTargetPssMb { get; private set; }
    public double TargetCpuSeconds { get; private set; }
    public IReadOnlyList<TimeSample> Series { get { lock (_series) return _series.ToArray(); } }

    public async Task RunAsync(CancellationToken ct)
    {
        var t0 = Clock.NowUs();
        long lastAcc = ledger.AcceptedTotal, lastDel = receiver.MessagesReceived, lastFail = 0;
        var lastUs = t0;
        SampleTarget();
        _self.Sample();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var n = 0;
        while (await timer.WaitForNextTickAsync(ct))
        {
            var now = Clock.NowUs();
            var dt = Math.Max(1e-3, (now - lastUs) / 1e6);
            lastUs = now;
            var acc = ledger.AcceptedTotal;
            var del = receiver.MessagesReceived;
            var fail = Interlocked.Read(ref runner.Progress.Fail);
            var accLat = runner.Iteration.TakeInterval();
            var e2e = ledger.EndToEnd.TakeInterval();
            var (rss, pss, cpu) = SampleTarget();
            var self = _self.Sample();
            var sample = new TimeSample(
                Math.Round((now - t0) / 1e6, 1), Phase, (acc - lastAcc) / dt, (del - lastDel) / dt, (fail - lastFail) / dt,
                accLat.P50Us / 1000.0, accLat.P99Us / 1000.0, e2e.P50Us / 1000.0, e2e.P99Us / 1000.0,
                ledger.InFlight, target.QueueDepth(), rss, pss, cpu, self.RssBytes / 1048576.0, self.CpuPercent,
                Interlocked.Read(ref runner.Progress.Backlog));
            lock (_series) _series.Add(sample);
            lastAcc = acc; lastDel = del; lastFail = fail;
            if (_tty || ++n % 5 == 0) WriteProgress(sample, acc, del);
        }
    }

    private (double Rss, double Pss, double Cpu) SampleTarget()
    {
        if (_targetProc is null && target.RootPid is { } pid) _targetProc = new ProcessTreeSampler(pid);
        if (_targetProc is null) return (0, 0, 0);
        var s = _targetProc.Sample();
        if (_cpuStart < 0) _cpuStart = s.CpuSeconds;
        TargetCpuSeconds = Math.Max(0, s.CpuSeconds - _cpuStart);
        LastTargetRssMb = s.RssBytes / 1048576.0;
        LastTargetPssMb = s.PssBytes / 1048576.0;
        return (LastTargetRssMb, LastTargetPssMb, s.CpuPercent);
    }

    private void WriteProgress(TimeSample s, long acc, long del)
    {
        var q = s.TargetQueue is { } tq ? $" queue {tq}" : "";
        var line = string.Create(CultureInfo.InvariantCulture,
            $"[{label}] {s.T,5:0}s {s.Phase,-7} accepted {acc,8} ({s.AcceptedPerSec,6:0}/s) delivered {del,8} ({s.DeliveredPerSec,6:0}/s) in-flight {s.InFlight,7}{q} fail {runner.Progress.Fail} p99 {s.AcceptP99Ms,6:0.0} ms  RSS {s.TargetRssMb,6:0} MB cpu {s.TargetCpuPercent,4:0}%");
        if (_tty) Console.Error.Write("\r" + line.PadRight(Math.Min(200, Console.WindowWidth > 0 ? Console.WindowWidth - 1 : 160)));
        else Console.Error.WriteLine(line);
    }
}
