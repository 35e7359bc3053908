using System.Diagnostics;
using System.Globalization;
using MtaSts.Actors.Spool;
using MtaSts.Actors.Spool.Postgres;
using MtaSts.Actors.TestInfra.Postgres;

// Spool benchmark: the local SegmentSpool (temp dir, fsync per group commit) against the cluster PostgresSpool
// (private PostgreSQL on loopback started with fsync, synchronous_commit and full_page_writes ON, so that both
// acknowledge durable writes). Appends/s and per-append latency for 1 KB and 100 KB bodies at concurrency 1 and 50, then MarkDone/s.
// Usage: dotnet run -c Release --project load-tests/SpoolBench -- [--serial 300] [--concurrent 3000] [--pg-fsync on|off] [--pg-writers 1,3]
// --open RATE [--preallocate off,on,…] [--seconds 20]: SegmentSpool only, open model (issue 15): RATE appends/s of 2.3 KB on a
// fixed schedule, each message marked done once durable (as a delivery would), latency from the scheduled time; one run per
// entry of --preallocate (SegmentSpoolOptions.PreallocateBytes off = 0, on = the default), alternating.
if (Array.IndexOf(args, "--open") >= 0) return await OpenLatencyAsync(Arg("--open", 1500), ArgString("--preallocate", "off,on,off,on"), Arg("--seconds", 20));
var serialCount = Arg("--serial", 300);
var concurrentCount = Arg("--concurrent", 3000);
var pgFsync = ArgString("--pg-fsync", "on");
var pgWriters = ArgString("--pg-writers", "3").Split(',').Select(int.Parse).ToArray(); // e.g. 1,3: one PostgresSpool run per count

Console.WriteLine($"spool benchmark: {Environment.ProcessorCount} cores, load average at start {LoadAverage()}");
var results = new List<Result>();
var tmp = Directory.CreateTempSubdirectory("spoolbench-").FullName;
await using var pg = await PostgresInstance.StartAsync(durable: pgFsync == "on");
try
{
    var cs = await pg.CreateDatabaseAsync("bench");
    Console.WriteLine($"PostgreSQL {pg.ScalarAsync("bench", "SHOW server_version").Result}, fsync={pg.ScalarAsync("bench", "SHOW fsync").Result}, full_page_writes={pg.ScalarAsync("bench", "SHOW full_page_writes").Result}, " +
                      $"synchronous_commit (spool sessions force on)");

    int run = 0;
    foreach (var size in new[] { 1024, 100 * 1024 })
    foreach (var concurrency in new[] { 1, 50 })
    {
        int count = concurrency == 1 ? serialCount : concurrentCount;
        var body = new byte[size];
        Random.Shared.NextBytes(body);
        run++;
        {
            await using var seg = new SegmentSpool(new SegmentSpoolOptions(Path.Combine(tmp, $"seg{run}")));
            results.Add(await RunAsync("SegmentSpool", seg, size, concurrency, count, body));
        }
        foreach (var writers in pgWriters)
        {
            await using var pgs = await PostgresSpool.OpenAsync(new PostgresSpoolOptions(cs) { TablePrefix = $"bench{run}w{writers}", AppendWriters = writers });
            var r = await RunAsync($"PostgresSpool, {writers} writer(s)", pgs, size, concurrency, count, body);
            results.Add(r with { Commits = pgs.AppendCommits });
        }
    }
}
finally
{
    try { Directory.Delete(tmp, true); } catch (IOException) { }
}

Console.WriteLine();
Console.WriteLine("| spool | body | concurrency | appends | appends/s | p50 | p99 | commits | MarkDone/s |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
foreach (var r in results)
    Console.WriteLine($"| {r.Spool} | {r.Size / 1024} KB | {r.Concurrency} | {r.Count} | {r.AppendsPerSecond:N0} | {r.P50:N2} ms | {r.P99:N2} ms | " +
                      $"{(r.Commits > 0 ? r.Commits.ToString(CultureInfo.InvariantCulture) : "-")} | {r.DonesPerSecond:N0} |");
Console.WriteLine($"\nload average at end {LoadAverage()}");
return 0;

static async Task<Result> RunAsync(string name, ISpool spool, int size, int concurrency, int count, byte[] body)
{
    var latencies = new double[count];
    int next = 0;
    var envelope = new Envelope("sender@bench.test", [new Recipient(0, "rcpt@dest.test")], DateTimeOffset.UtcNow);
    // Warm-up outside the measurement (connections, JIT, schema).
    await spool.AppendAsync(count + 1, envelope, MessageBody.FromBytes(body));
    await spool.MarkDoneAsync(count + 1, [0]);

    var total = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
    {
        int i;
        while ((i = Interlocked.Increment(ref next)) <= count)
        {
            long t0 = Stopwatch.GetTimestamp();
            await spool.AppendAsync(i, envelope, MessageBody.FromBytes(body));
            latencies[i - 1] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
    })));
    var appendSeconds = total.Elapsed.TotalSeconds;

    next = 0;
    var dones = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
    {
        int i;
        while ((i = Interlocked.Increment(ref next)) <= count)
            if (!await spool.MarkDoneAsync(i, [0])) throw new InvalidOperationException($"MID {i} did not finish");
    })));
    var doneSeconds = dones.Elapsed.TotalSeconds;
    Array.Sort(latencies);
    var r = new Result(name, size, concurrency, count, count / appendSeconds, latencies[count / 2],
        latencies[Math.Min(count - 1, (int)Math.Ceiling(count * 0.99) - 1)], count / doneSeconds, 0);
    Console.WriteLine($"{name,-14} {size / 1024,4} KB  c={concurrency,-3} {r.AppendsPerSecond,9:N0} appends/s  p50 {r.P50,7:N2} ms  p99 {r.P99,7:N2} ms  " +
                      $"{r.DonesPerSecond,9:N0} MarkDone/s  (load {LoadAverage()})");
    return r;
}

static async Task<int> OpenLatencyAsync(int rate, string variants, int seconds)
{
    Console.WriteLine($"spool open-model latency: {rate} appends/s of 2.3 KB + one done-mark each, 3 s warm-up + {seconds} s, {Environment.ProcessorCount} cores");
    Console.WriteLine("| preallocate | load avg (start) | appends | achieved/s | p50 ms | p99 ms | p99.9 ms | max ms | fsyncs | fsync p50 / p99 / max ms |");
    Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    var body = new byte[2350];
    Random.Shared.NextBytes(body);
    var envelope = new Envelope("sender@bench.test", [new Recipient(0, "rcpt@dest.test")], DateTimeOffset.UtcNow);
    foreach (var variant in variants.Split(','))
    {
        var dir = Directory.CreateTempSubdirectory("spoolbench-open-").FullName;
        var load = LoadAverage();
        var fsyncs = new List<double>();
        try
        {
            var options = variant == "on" ? new SegmentSpoolOptions(dir) : new SegmentSpoolOptions(dir, PreallocateBytes: 0);
            await using var spool = new SegmentSpool(options);
            spool.GroupCommitted += (d, _) => { lock (fsyncs) fsyncs.Add(d.TotalMilliseconds); };
            spool.Recover();
            long warm = 3L * rate, total = warm + (long)seconds * rate;
            var latencies = new double[total - warm];
            var pending = new List<Task>();
            long t0 = Stopwatch.GetTimestamp();
            double tick = Stopwatch.Frequency / (double)rate;
            for (long i = 0; i < total; i++)
            {
                long due = t0 + (long)(i * tick);
                while (Stopwatch.GetTimestamp() < due)
                {
                    var wait = (due - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
                    if (wait > 1) await Task.Delay((int)wait); else Thread.Yield();
                }
                long mid = i + 1, slot = i - warm;
                pending.Add(Task.Run(async () =>
                {
                    await spool.AppendAsync(mid, envelope, MessageBody.FromBytes(body));
                    if (slot >= 0) latencies[slot] = (Stopwatch.GetTimestamp() - due) * 1000.0 / Stopwatch.Frequency;
                    await spool.MarkDoneAsync(mid, [0]);
                }));
                if (i == warm) lock (fsyncs) fsyncs.Clear();
            }
            var measuredSeconds = (Stopwatch.GetTimestamp() - t0) / (double)Stopwatch.Frequency - 3;
            await Task.WhenAll(pending);
            Array.Sort(latencies);
            double[] f;
            lock (fsyncs) f = fsyncs.Order().ToArray();
            double P(double[] v, double q) => v.Length == 0 ? 0 : v[Math.Min(v.Length - 1, (int)Math.Ceiling(v.Length * q) - 1)];
            Console.WriteLine($"| {variant} | {load} | {latencies.Length} | {latencies.Length / measuredSeconds:N0} | {P(latencies, 0.5):N2} | {P(latencies, 0.99):N2} | " +
                              $"{P(latencies, 0.999):N2} | {latencies[^1]:N2} | {f.Length} | {P(f, 0.5):N2} / {P(f, 0.99):N2} / {(f.Length > 0 ? f[^1] : 0):N2} |");
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }
    Console.WriteLine($"\nload average at end {LoadAverage()}");
    return 0;
}

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

string ArgString(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

internal sealed record Result(string Spool, int Size, int Concurrency, int Count, double AppendsPerSecond, double P50, double P99,
    double DonesPerSecond, long Commits);
