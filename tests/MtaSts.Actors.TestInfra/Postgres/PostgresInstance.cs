using MtaSts.Actors.TestInfra.Net;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Npgsql;

namespace MtaSts.Actors.TestInfra.Postgres;

/// <summary>
/// A private PostgreSQL cluster from Debian's packages (installed by tests/postgres/setup.sh): <c>initdb</c> in a
/// temp directory, <c>pg_ctl start</c> on a free loopback port (Unix socket in the same directory, fsync off), run as
/// the <c>postgres</c> user when the tests run as root (PostgreSQL refuses to run as root). Trust authentication
/// on loopback only. <c>pg_ctl stop -m immediate</c> and the directory is removed on dispose; a server still running
/// when the test process exits (a fixture never disposed, a failed start) is stopped by its postmaster PID.
/// </summary>
public sealed class PostgresInstance : IAsyncDisposable
{
    private const int SigQuit = 3; // PostgreSQL's "immediate shutdown"
    private static readonly ConcurrentDictionary<PostgresInstance, byte> Live = new();
    private readonly string _dir;
    private readonly string _bin;
    private int _disposed;
    private int _postmasterPid;

    static PostgresInstance() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var instance in Live.Keys)
        {
            instance.KillPostmaster();
            Thread.Sleep(200); // the postmaster's immediate shutdown, before its files go
            try { Directory.Delete(instance._dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    };

    private PostgresInstance(string dir, string bin, int port)
    {
        _dir = dir;
        _bin = bin;
        Port = port;
    }

    public int Port { get; private set; }
    public string DataDirectory => Path.Combine(_dir, "data");
    public string LogPath => Path.Combine(_dir, "postgres.log");

    /// <summary>Highest installed /usr/lib/postgresql/N/bin, or null.</summary>
    public static string? BinDirectory =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => Path.Combine(d, "bin"))
                .Where(b => File.Exists(Path.Combine(b, "initdb")))
                .OrderByDescending(b => int.TryParse(Path.GetFileName(Path.GetDirectoryName(b)), out var v) ? v : 0)
                .FirstOrDefault()
            : null;

    public static bool IsAvailable => BinDirectory is not null;

    private static bool IsRoot => Environment.UserName == "root";

    /// <summary>Npgsql connection string for <paramref name="database"/> (superuser postgres, trust auth).</summary>
    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port};Database={database};Username=postgres;Pooling=true;Maximum Pool Size=20;Timeout=30";

    /// <param name="durable">Keep PostgreSQL's fsync, synchronous_commit and full_page_writes on (benchmarks that
    /// compare durable stores); the tests leave them off for speed.</param>
    public static async Task<PostgresInstance> StartAsync(CancellationToken ct = default, bool durable = false)
    {
        var bin = BinDirectory ?? throw new InvalidOperationException("PostgreSQL is not installed: run tests/postgres/setup.sh as root");
        var dir = Directory.CreateTempSubdirectory("pgtest-").FullName;
        if (IsRoot) await RunAsync("chown", ["postgres:postgres", dir], asPostgres: false, ct).ConfigureAwait(false);
        var instance = new PostgresInstance(dir, bin, LoopbackPort.Free());
        Live[instance] = 0;
        try
        {
            await RunAsync(Path.Combine(bin, "initdb"),
                ["-D", instance.DataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                IsRoot, ct).ConfigureAwait(false);
            // The free port is only free when probed: another test's listener can take it before the postmaster binds
            // it ("could not bind ... Address already in use", pg_ctl "stopped waiting"). Retry on a new port.
            for (var attempt = 1; ; attempt++)
            {
                var options = $"-p {instance.Port} -k {dir} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=32MB" +
                              (durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
                try
                {
                    await RunAsync(Path.Combine(bin, "pg_ctl"),
                        ["-D", instance.DataDirectory, "-l", instance.LogPath, "-o", options, "-w", "-t", "60", "start"],
                        IsRoot, ct).ConfigureAwait(false);
                    instance.ReadPostmasterPid();
                    return instance;
                }
                catch (InvalidOperationException e) when (attempt < 4 && !ct.IsCancellationRequested)
                {
                    instance.ReadPostmasterPid();
                    instance.KillPostmaster();
                    Console.Error.WriteLine($"PostgresInstance: start on port {instance.Port} failed (attempt {attempt}), " +
                                            $"retrying on another port: {e.Message.Trim()}\n{instance.ReadLog()}");
                    instance.Port = LoopbackPort.Free();
                }
            }
        }
        catch
        {
            await instance.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>postmaster.pid's first line is the server's PID (PostgreSQL's documented layout).</summary>
    private void ReadPostmasterPid()
    {
        try
        {
            var path = Path.Combine(DataDirectory, "postmaster.pid");
            if (File.Exists(path) && int.TryParse(File.ReadLines(path).FirstOrDefault(), out var pid)) _postmasterPid = pid;
        }
        catch (IOException) { }
    }

    /// <summary>SIGQUIT to the postmaster: immediate shutdown, its backends exit with it. Safe to call twice.</summary>
    private void KillPostmaster()
    {
        var pid = Interlocked.Exchange(ref _postmasterPid, 0);
        // Only a live postgres process of that PID: never a stranger that reused it.
        if (pid > 0 && ProcessName(pid) is "postgres") _ = Kill(pid, SigQuit);
    }

    private static string? ProcessName(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>Creates a database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string name, CancellationToken ct = default)
    {
        await using (var c = new NpgsqlConnection(ConnectionString()))
        {
            await c.OpenAsync(ct).ConfigureAwait(false);
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"CREATE DATABASE \"{name}\"";
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        return ConnectionString(name);
    }

    /// <summary>Runs a scalar query (e.g. a row count) against <paramref name="database"/>.</summary>
    public async Task<object?> ScalarAsync(string database, string sql, CancellationToken ct = default)
    {
        await using var c = new NpgsqlConnection(ConnectionString(database));
        await c.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
    }

    public string ReadLog() => File.Exists(LogPath) ? File.ReadAllText(LogPath) : "";

    private static async Task RunAsync(string file, IReadOnlyList<string> args, bool asPostgres, CancellationToken ct)
    {
        var psi = new ProcessStartInfo
        {
            FileName = asPostgres ? "runuser" : file,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        if (asPostgres)
        {
            psi.ArgumentList.Add("-u");
            psi.ArgumentList.Add("postgres");
            psi.ArgumentList.Add("--");
            psi.ArgumentList.Add(file);
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        // pg_ctl start leaves the server holding inherited pipes: read without waiting for EOF.
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        if (p.ExitCode != 0)
        {
            await Task.WhenAny(Task.WhenAll(stdout, stderr), Task.Delay(1000, ct)).ConfigureAwait(false);
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited with {p.ExitCode}: " +
                                                $"{(stdout.IsCompleted ? stdout.Result : "")}{(stderr.IsCompleted ? stderr.Result : "")}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        NpgsqlConnection.ClearAllPools();
        ReadPostmasterPid();
        try
        {
            if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(40));
                await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", DataDirectory, "-m", "immediate", "-w", "-t", "30", "stop"], IsRoot,
                    timeout.Token).ConfigureAwait(false);
                _postmasterPid = 0;
            }
        }
        catch (Exception) { }
        // pg_ctl stop failed or never ran (a start cut short): the PID read at start still names the server.
        KillPostmaster();
        Live.TryRemove(this, out _);
        // Backends of an immediate shutdown may still be unlinking files for a moment: "directory not empty".
        for (var attempt = 0; attempt < 20 && Directory.Exists(_dir); attempt++)
        {
            try { Directory.Delete(_dir, recursive: true); }
            catch (IOException) { await Task.Delay(100).ConfigureAwait(false); }
            catch (UnauthorizedAccessException) { return; }
        }
    }
}
