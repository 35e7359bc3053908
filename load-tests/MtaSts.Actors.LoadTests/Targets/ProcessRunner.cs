using System.Diagnostics;

namespace MtaSts.Actors.LoadTests.Targets;

/// <summary>Runs a short command and captures its output; Postfix tools only print to a terminal, so they go through script(1).</summary>
public static class ProcessRunner
{
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, bool viaTty = false)
    {
        var argList = args.ToList();
        if (viaTty && File.Exists("/usr/bin/script"))
        {
            var cmd = string.Join(' ', new[] { file }.Concat(argList).Select(Quote));
            argList = ["-qec", cmd, "/dev/null"];
            file = "/usr/bin/script";
        }
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in argList) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{file}: timed out after {timeout.TotalSeconds:0} s");
        }
        return (p.ExitCode, ((await stdout) + (await stderr)).Replace("\r", "", StringComparison.Ordinal).Trim());
    }

    public static string Quote(string s) => s.All(c => char.IsLetterOrDigit(c) || "/-_.:=,@".Contains(c)) ? s : "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
