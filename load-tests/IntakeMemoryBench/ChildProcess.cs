using System.Diagnostics;

namespace MtaSts.Actors.IntakeMemoryBench;

/// <summary>Runs a helper command (dotnet build, git) with a time bound; shared by the memory benchmarks.</summary>
internal static class ChildProcess
{
    /// <summary>Exit code (-1 on timeout, the tree killed) and stdout + stderr.</summary>
    public static (int Rc, string Output) Run(string file, string[] argv, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in argv) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{file} timed out");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary><c>git -C root args</c>, trimmed, or "?" when git fails.</summary>
    public static string Git(string root, string args)
    {
        var (rc, output) = Run("git", ["-C", root, .. args.Split(' ')], TimeSpan.FromSeconds(20));
        return rc == 0 ? output.Trim() : "?";
    }
}
