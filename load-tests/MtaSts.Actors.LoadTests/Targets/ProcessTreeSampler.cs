using System.Globalization;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>
/// Memory and CPU of a process and all its descendants, read from /proc. Postfix is a dozen processes, so the
/// tree is what must be compared with the single gateway process. RSS double-counts shared pages (libc, the
/// Postfix shared libraries); PSS (from smaps_rollup) splits them fairly, so both are reported.
/// </summary>
public sealed class ProcessTreeSampler(int rootPid, bool includeDescendants = true)
{
    private static readonly long PageSize = Environment.SystemPageSize;
    private const double ClockTicks = 100.0; // USER_HZ; 100 on every Linux we run on
    private double _lastCpuSeconds = -1;
    private long _lastSampleTicks;

    public int RootPid { get; } = rootPid;

    public ProcessSample Sample()
    {
        var pids = includeDescendants ? Descendants(RootPid) : (Directory.Exists($"/proc/{RootPid}") ? [RootPid] : new List<int>());
        long rss = 0, pss = 0;
        double cpu = 0;
        foreach (var pid in pids)
        {
            try
            {
                var statm = File.ReadAllText($"/proc/{pid}/statm").Split(' ');
                rss += long.Parse(statm[1], CultureInfo.InvariantCulture) * PageSize;
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                // fields after "(comm)": state=0 ... utime=11 stime=12 cutime=13 cstime=14 (0-based here)
                cpu += (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)
                      + long.Parse(f[13], CultureInfo.InvariantCulture) + long.Parse(f[14], CultureInfo.InvariantCulture)) / ClockTicks;
                pss += ReadPss(pid);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // The process exited between listing and reading: skip it.
            }
        }
        var now = Environment.TickCount64;
        double cpuPercent = 0;
        if (_lastCpuSeconds >= 0 && now > _lastSampleTicks)
            cpuPercent = Math.Max(0, (cpu - _lastCpuSeconds) / ((now - _lastSampleTicks) / 1000.0) * 100);
        _lastCpuSeconds = cpu;
        _lastSampleTicks = now;
        return new ProcessSample(pids.Count, rss, pss, cpu, cpuPercent);
    }

    private static long ReadPss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
        {
            if (!line.StartsWith("Pss:", StringComparison.Ordinal)) continue;
            var kb = line[4..].Trim().Split(' ')[0];
            return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
        }
        return 0;
    }

    private static List<int> Descendants(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ', 3);
                var ppid = int.Parse(f[1], CultureInfo.InvariantCulture);
                if (!children.TryGetValue(ppid, out var list)) children[ppid] = list = [];
                list.Add(pid);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException) { }
        }
        var result = new List<int>();
        if (!Directory.Exists($"/proc/{root}")) return result;
        var stack = new Stack<int>([root]);
        while (stack.Count > 0)
        {
            var p = stack.Pop();
            result.Add(p);
            if (children.TryGetValue(p, out var kids)) foreach (var k in kids) stack.Push(k);
        }
        return result;
    }
}

public readonly record struct ProcessSample(int Processes, long RssBytes, long PssBytes, double CpuSeconds, double CpuPercent);
