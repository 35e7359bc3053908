using System.Runtime.InteropServices;

namespace MtaSts.Actors.LoadTests.Reports;

/// <summary>The facts a load-test number is meaningless without: cores, memory, kernel, runtime, commit, disk.</summary>
public static class MachineFacts
{
    public static MachineInfo Collect(string repoRoot, string workDir)
    {
        long memMb = 0;
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            if (line is not null) memMb = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException) { }
        return new MachineInfo(Environment.ProcessorCount, memMb, RuntimeInformation.OSDescription, Environment.Version.ToString(),
            GitCommit(repoRoot), FsType(workDir), Environment.MachineName);
    }

    /// <summary>Short commit, plus "+ uncommitted changes" when tracked files differ from it (results are git-ignored).</summary>
    private static string GitCommit(string repoRoot)
    {
        var sha = Run("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"]);
        if (sha == "unknown") return sha;
        var dirty = Run("git", ["-C", repoRoot, "status", "--porcelain", "--untracked-files=no"]);
        return dirty is "" or "unknown" ? sha : sha + " + uncommitted changes";
    }

    /// <summary>The 1, 5 and 15 minute load averages from /proc/loadavg, e.g. "3.12 2.80 2.51".</summary>
    public static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }

    private static string FsType(string dir)
    {
        Directory.CreateDirectory(dir);
        var t = Run("stat", ["-f", "-c", "%T", dir]);
        return $"{t} ({dir})";
    }

    private static string Run(string file, string[] args)
    {
        try
        {
            var (code, output) = Targets.ProcessRunner.RunAsync(file, args, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
            return code == 0 ? output.Trim() : "unknown";
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception) { return "unknown"; }
    }
}
