using System.Diagnostics;

namespace MtaSts.Actors.Spool.Tests;

public sealed class DataDirectoryLockTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "datadir-lock-tests-" + Guid.NewGuid().ToString("N"), "data");

    private string LockFile => Path.Combine(_dir, DataDirectoryLock.FileName);

    [Fact]
    public void A_second_lock_on_the_same_directory_fails_naming_the_directory_and_the_holder_and_works_again_after_dispose()
    {
        var first = DataDirectoryLock.Acquire(_dir);
        Assert.Equal(LockFile, first.LockFile);

        var ex = Assert.Throws<DataDirectoryInUseException>(() => DataDirectoryLock.Acquire(_dir));
        Assert.Equal($"data directory {_dir} is in use by another gateway (pid {Environment.ProcessId}; lock file {LockFile})", ex.Message);
        Assert.Equal(Environment.ProcessId, ex.HolderPid);
        Assert.Equal(_dir, ex.DataDirectory);

        first.Dispose();
        first.Dispose(); // idempotent
        using var again = DataDirectoryLock.Acquire(_dir);
        Assert.Equal($"{Environment.ProcessId}\n", ReadWhileHeld());
    }

    [Fact]
    public void The_lock_is_taken_with_a_relative_path_and_creates_the_directory()
    {
        var relative = Path.GetRelativePath(Directory.GetCurrentDirectory(), _dir);
        using var l = DataDirectoryLock.Acquire(relative);
        Assert.Equal(_dir, l.DataDirectory);
        Assert.True(File.Exists(LockFile));
        var ex = Assert.Throws<DataDirectoryInUseException>(() => DataDirectoryLock.Acquire(_dir));
        Assert.Contains($"data directory {_dir} is in use", ex.Message, StringComparison.Ordinal);
    }

    [FlockToolFact]
    public async Task The_lock_excludes_other_processes_and_is_released_by_dispose()
    {
        var held = DataDirectoryLock.Acquire(_dir);
        Assert.Equal(1, await FlockAsync("-n", LockFile, "true")); // flock(1) -n: exit 1 when the lock is held elsewhere
        held.Dispose();
        Assert.Equal(0, await FlockAsync("-n", LockFile, "true"));
    }

    [FlockToolFact]
    public async Task A_lock_held_by_another_process_fails_without_a_pid_when_the_file_names_none()
    {
        Directory.CreateDirectory(_dir);
        // -o: the lock stays with flock(1) itself (not inherited by sleep), so it is gone once that process has exited.
        using var holder = Process.Start(new ProcessStartInfo(FlockToolFactAttribute.Tool) { ArgumentList = { "-o", LockFile, "sleep", "120" } })!;
        try
        {
            DataDirectoryInUseException? ex = null;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (ex is null && DateTime.UtcNow < deadline)
            {
                try
                {
                    DataDirectoryLock.Acquire(_dir).Dispose(); // not held yet: flock(1) is still starting
                    await Task.Delay(50);
                }
                catch (DataDirectoryInUseException e) { ex = e; }
            }
            Assert.NotNull(ex);
            Assert.Equal($"data directory {_dir} is in use by another gateway (lock file {LockFile})", ex.Message);
            Assert.Null(ex.HolderPid);
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
            await holder.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        using var after = DataDirectoryLock.Acquire(_dir);
    }

    /// <summary>Content of the lock file while this process holds it (a .NET FileStream cannot open it then).</summary>
    private string ReadWhileHeld()
    {
        var psi = new ProcessStartInfo("cat") { ArgumentList = { LockFile }, RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var text = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(30_000));
        return text;
    }

    private static async Task<int> FlockAsync(params string[] args)
    {
        var psi = new ProcessStartInfo(FlockToolFactAttribute.Tool);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return p.ExitCode;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path.GetDirectoryName(_dir)!, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Runs only where util-linux flock(1) is installed (the other process of the cross-process tests).</summary>
public sealed class FlockToolFactAttribute : FactAttribute
{
    public const string Tool = "/usr/bin/flock";

    public FlockToolFactAttribute()
    {
        if (!File.Exists(Tool)) Skip = $"{Tool} missing (util-linux)";
    }
}
