using System.Diagnostics;
using System.Globalization;

namespace MtaSts.Actors.IntakeMemoryBench;

/// <summary>One reading of /proc/&lt;pid&gt;/status (kB) and /proc/&lt;pid&gt;/stat (CPU), with the phase it fell in.</summary>
internal readonly record struct Sample(double T, string Phase, long RssKb, long HwmKb, long AnonKb, long FileKb, double CpuS, int Threads);

/// <summary>
/// Samples the gateway process's memory every <c>interval</c> on its own thread (VmRSS, VmHWM, RssAnon, RssFile,
/// utime+stime, threads). The gateway is started as <c>dotnet mtasts-gateway.dll</c>: the muxer hosts the runtime
/// in the same process, so this one PID is the whole gateway.
/// </summary>
internal sealed class RssSampler : IDisposable
{
    private static readonly double TicksPerSecond = 100; // USER_HZ: 100 on Linux (sysconf(_SC_CLK_TCK))
    private readonly int _pid;
    private readonly Stopwatch _clock;
    private readonly TimeSpan _interval;
    private readonly List<Sample> _samples = [];
    private readonly Thread _thread;
    private volatile bool _stop;
    private volatile string _phase = "start";

    public RssSampler(int pid, Stopwatch clock, TimeSpan interval)
    {
        _pid = pid;
        _clock = clock;
        _interval = interval;
        _thread = new Thread(Loop) { IsBackground = true, Name = "rss-sampler", Priority = ThreadPriority.AboveNormal };
        _thread.Start();
    }

    public string Phase { get => _phase; set => _phase = value; }

    public IReadOnlyList<Sample> Samples
    {
        get { lock (_samples) return [.. _samples]; }
    }

    /// <summary>Reads now (also recorded in the series); null when the process is gone.</summary>
    public Sample? Now()
    {
        var s = Read(_pid, _clock.Elapsed.TotalSeconds, _phase);
        if (s is { } v) lock (_samples) _samples.Add(v);
        return s;
    }

    private void Loop()
    {
        var next = _clock.Elapsed;
        while (!_stop)
        {
            if (Now() is null) return;
            next += _interval;
            var wait = next - _clock.Elapsed;
            if (wait > TimeSpan.Zero) Thread.Sleep(wait);
            else next = _clock.Elapsed; // late (busy box): no catch-up burst
        }
    }

    public static Sample? Read(int pid, double t, string phase)
    {
        try
        {
            long rss = 0, hwm = 0, anon = 0, file = 0;
            var threads = 0;
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kb(line);
                else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) hwm = Kb(line);
                else if (line.StartsWith("RssAnon:", StringComparison.Ordinal)) anon = Kb(line);
                else if (line.StartsWith("RssFile:", StringComparison.Ordinal)) file = Kb(line);
                else if (line.StartsWith("Threads:", StringComparison.Ordinal)) threads = (int)Kb(line);
            }
            // /proc/<pid>/stat: "pid (comm) state ..." — fields after the last ')' start at field 3; utime = 14, stime = 15.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var cpu = (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
            return rss == 0 ? null : new Sample(t, phase, rss, hwm, anon, file, cpu, threads);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null; // exited (or a zombie: no Vm* lines)
        }
    }

    private static long Kb(string line)
    {
        var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 2 ? long.Parse(parts[1], CultureInfo.InvariantCulture) : 0;
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join(TimeSpan.FromSeconds(2));
    }
}
