using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using MtaSts.Actors.IntakeMemoryBench;

// Intake memory benchmark: the RSS of a REAL gateway process (dotnet mtasts-gateway.dll serve, started here with a
// generated config) while N raw-socket SMTP sessions each send one large message at the same time. The load generator
// (and, with --deliver, the discarding receiver) run in this process, so they never count in the gateway's RSS.
// Usage: dotnet run -c Release --project load-tests/IntakeMemoryBench -- [--sessions 20 --size-mb 48] [--deliver]
var clock = Stopwatch.StartNew();
Options o;
try { o = Options.Parse(args); }
catch (ArgumentException ex)
{
    if (ex.Message.Length > 0) Console.Error.WriteLine($"intake-memory-bench: {ex.Message}");
    Console.Error.WriteLine(Options.Usage);
    return 2;
}

using var abort = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true; // clean up (stop the gateway, delete the work dir) instead of dying
    abort.Cancel();
};

var root = RepoRoot();
if (root is null)
{
    Console.Error.WriteLine("intake-memory-bench: run it from the repository (MtaSts.Actors.sln not found above the current directory)");
    return 2;
}
var dll = o.GatewayDll ?? Path.Combine(root, "src", "MtaSts.Actors.Host", "bin", "Release", "net10.0", "mtasts-gateway.dll");
if (o.GatewayDll is null && !o.NoBuild)
{
    Say("building src/MtaSts.Actors.Host (Release) ...");
    var (rc, output) = ChildProcess.Run("dotnet", ["build", Path.Combine(root, "src", "MtaSts.Actors.Host"), "-c", "Release", "-warnaserror", "-nologo",
        "-v", "q", "--disable-build-servers"], TimeSpan.FromMinutes(10));
    if (rc != 0)
    {
        Console.Error.WriteLine(output);
        Console.Error.WriteLine("intake-memory-bench: the gateway build failed");
        return 3;
    }
}
if (!File.Exists(dll))
{
    Console.Error.WriteLine($"intake-memory-bench: {dll} not found (dotnet build src/MtaSts.Actors.Host -c Release)");
    return 3;
}

var started = DateTime.Now;
var outDir = o.OutDir ?? Path.Combine(root, "load-tests", "results", $"{started:yyyyMMdd-HHmmss}-intake-memory");
var work = Path.Combine(Path.GetTempPath(), "mtasts-intake-bench-" + Guid.NewGuid().ToString("N")[..12]);
Directory.CreateDirectory(work);
var loadBefore = LoadAverage();
var text = new MessageText();
var size = o.SizeBytes;
var total = o.Sessions * o.Rounds;
var maxMessageSize = Math.Max(60L * 1024 * 1024, size + size / 4);
var notes = new List<string>();
var exit = 0;

DiscardReceiver? receiver = o.Deliver ? new DiscardReceiver() : null;
var nextHop = receiver?.Port ?? GatewayProcess.FreePort(); // without --deliver: a port nobody listens on (refused)
GatewayProcess? gw = null;
RssSampler? sampler = null;
Sample? baseline = null, after250 = null, afterDelivery = null, afterIdle = null, atReady = null;
double transferStart = 0, transferEnd = 0, readySeconds = 0, deliveredAt = -1;
var transfers = new List<Transfer>();
string? banner = null, stopOutcome = null;
long spoolBytes = 0, readyLogged = 0, readyBytes = 0;
int segments = 0, delayed = 0;
var logProblems = new List<string>();
try
{
    var spawned = clock.Elapsed.TotalSeconds;
    gw = GatewayProcess.Start(dll, work, nextHop, maxMessageSize, Math.Max(100, 2 * o.Sessions));
    sampler = new RssSampler(gw.Pid, clock, TimeSpan.FromMilliseconds(o.IntervalMs));
    Say($"gateway pid {gw.Pid} on 127.0.0.1:{gw.Port}, next hop 127.0.0.1:{nextHop} ({(o.Deliver ? "discarding receiver" : "refused: no delivery")}), work {work}");
    banner = await gw.WaitReadyAsync(TimeSpan.FromSeconds(120), abort.Token);
    if (banner is null)
    {
        Console.Error.WriteLine($"intake-memory-bench: the gateway did not answer 220 within 120 s\n{gw.OutputTail(20)}");
        return 3;
    }
    readySeconds = clock.Elapsed.TotalSeconds - spawned;
    atReady = sampler.Now();
    Say($"listening after {readySeconds:F1} s; settling {o.Settle:F0} s for the baseline");

    sampler.Phase = "baseline";
    await Task.Delay(TimeSpan.FromSeconds(o.Settle), abort.Token);
    baseline = sampler.Now();

    // Transfers: every session connects and says EHLO, then all start MAIL … DATA at the same moment.
    sampler.Phase = "transfer";
    long sent = 0;
    var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    using var bound = CancellationTokenSource.CreateLinkedTokenSource(abort.Token);
    bound.CancelAfter(TimeSpan.FromSeconds(o.Timeout));
    var clients = Enumerable.Range(0, o.Sessions).Select(i => Task.Run(async () =>
    {
        try
        {
            return await LoadClient.RunAsync(i, gw.Port, o.Rounds, size, text, clock, go.Task, n => Interlocked.Add(ref sent, n), bound.Token);
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
        {
            return new List<Transfer> { new(i, -1, 0, $"{ex.GetType().Name}: {ex.Message}", 0, 0, clock.Elapsed.TotalSeconds) };
        }
    })).ToArray();
    await Task.Delay(300, abort.Token); // connect + EHLO
    transferStart = clock.Elapsed.TotalSeconds;
    go.SetResult();
    Say($"{o.Sessions} sessions × {o.Rounds} × {size / 1048576.0:N0} MiB started");
    var all = Task.WhenAll(clients);
    while (await Task.WhenAny(all, Task.Delay(2000, CancellationToken.None)) != all)
    {
        var s = RssSampler.Read(gw.Pid, clock.Elapsed.TotalSeconds, "");
        Say($"  {Interlocked.Read(ref sent) / 1048576.0,8:N0} MiB sent, gateway RSS {Mib(s?.RssKb ?? 0),6:N0} MiB (HWM {Mib(s?.HwmKb ?? 0):N0})");
    }
    transfers = (await all).SelectMany(x => x).OrderBy(t => t.Session).ThenBy(t => t.Round).ToList();
    transferEnd = transfers.Count > 0 ? transfers.Max(t => t.EndT) : clock.Elapsed.TotalSeconds;
    after250 = sampler.Now();
    abort.Token.ThrowIfCancellationRequested();
    var ok = transfers.Count(t => t.Code == 250);
    Say($"transfers done: {ok} of {total} got 250 in {transferEnd - transferStart:F1} s; RSS {Mib(after250?.RssKb ?? 0):N0} MiB");
    if (ok != total) exit = 1;

    if (receiver is not null)
    {
        sampler.Phase = "delivery";
        var until = clock.Elapsed + TimeSpan.FromSeconds(o.DrainTimeout);
        while (receiver.Messages < ok && clock.Elapsed < until && !gw.HasExited)
            await Task.Delay(100, abort.Token);
        if (receiver.Messages >= ok) deliveredAt = clock.Elapsed.TotalSeconds;
        else
        {
            notes.Add($"**only {receiver.Messages} of {ok} messages delivered within {o.DrainTimeout:F0} s**");
            exit = exit == 0 ? 1 : exit;
        }
        afterDelivery = sampler.Now();
        Say($"delivered {receiver.Messages} of {ok}; RSS {Mib(afterDelivery?.RssKb ?? 0):N0} MiB");
    }

    sampler.Phase = "idle";
    await Task.Delay(TimeSpan.FromSeconds(o.Idle), abort.Token);
    afterIdle = sampler.Now();
    if (gw.HasExited)
    {
        notes.Add($"the gateway exited during the run (code {gw.ExitCode})");
        exit = 1;
    }
    var spoolDir = Path.Combine(gw.DataDir, "spool");
    spoolBytes = DirBytes(spoolDir);
    segments = Directory.Exists(spoolDir) ? Directory.GetFiles(spoolDir, "seg-*").Length : 0;
    foreach (var line in File.Exists(gw.MailLog) ? File.ReadLines(gw.MailLog) : [])
    {
        // "MID 7 ready 50328130 bytes from <…>": what the gateway stored (dot-unstuffed, Received header added).
        var m = ReadyLine().Match(line);
        if (m.Success)
        {
            readyLogged++;
            readyBytes += long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        else
        {
            if (line.Contains(" Delayed: ", StringComparison.Ordinal)) delayed++;
            // Problems worth showing: warnings/criticals, and deferrals other than the intended "connection refused"
            // of the no-delivery mode.
            var problem = line.Contains(" Critical: ", StringComparison.Ordinal)
                || line.Contains(" Warning: ", StringComparison.Ordinal)
                || (line.Contains(" Delayed: ", StringComparison.Ordinal) && !line.Contains("connection refused", StringComparison.Ordinal));
            if (problem && logProblems.Count < 5) logProblems.Add(line.Length > 400 ? line[..400] + "…" : line);
        }
    }
}
catch (OperationCanceledException) when (abort.IsCancellationRequested)
{
    Console.Error.WriteLine("intake-memory-bench: interrupted; cleaning up");
    exit = 130;
}
finally
{
    if (sampler is not null) sampler.Phase = "stop";
    if (gw is not null)
    {
        stopOutcome = await gw.StopForReportAsync(exit != 0 && exit != 130, notes, TimeSpan.FromSeconds(30));
        Say($"gateway {stopOutcome}");
    }
    sampler?.Dispose();
    if (receiver is not null) await receiver.DisposeAsync();
    if (o.Keep) Say($"work directory kept: {work}");
    else
    {
        try { Directory.Delete(work, recursive: true); }
        catch (IOException ex) { Console.Error.WriteLine($"could not delete {work}: {ex.Message}"); }
    }
}
if (exit == 130 || baseline is not { } base0 || sampler is null) return exit == 0 ? 1 : exit;

// ---------------------------------------------------------------------------------------------------- report
var samples = sampler.Samples;
var inv = CultureInfo.InvariantCulture;
var accepted = transfers.Where(t => t.Code == 250).ToList();
var wall = transferEnd - transferStart;
var acceptedBytes = accepted.Sum(t => t.Octets);
Sample Max(string phase) => samples.Where(s => s.Phase == phase).DefaultIfEmpty(base0).MaxBy(s => s.RssKb);
var peakTransfer = Max("transfer");
var peakDelivery = o.Deliver ? Max("delivery") : (Sample?)null;
var peakIdle = Max("idle");
var durations = accepted.Select(t => t.Seconds).Order().ToArray();

var md = new StringBuilder();
void L(string line = "") => md.AppendLine(line);
L($"# Intake memory: {o.Sessions} concurrent SMTP sessions × {o.SizeMb.ToString("0.##", inv)} MiB{(o.Rounds > 1 ? $" × {o.Rounds} rounds" : "")}, {(o.Deliver ? "delivery ON (discarding receiver)" : "no delivery")}");
L();
L($"{started:yyyy-MM-dd HH:mm:ss} local; gateway `{Rel(dll)}` at `{Git("rev-parse --short HEAD")}`{(Git("status --porcelain --untracked-files=no").Length > 0 ? " (uncommitted changes)" : "")}, " +
  $".NET {Environment.Version}, {GcMode(dll)}; {Environment.ProcessorCount} cores, {MemTotalGb():N1} GB RAM, load average {loadBefore} → {LoadAverage()}.");
L();
L(o.Deliver
    ? "Delivery ON: every domain goes to an in-process SMTP receiver that reads and discards each message (`mx-override \"*\"`). " +
      "The delivery side's memory (each delivery reads its body from the spool) is included in the figures after the 250s."
    : "No delivery: every domain goes to a loopback port nobody listens on (`mx-override \"*\"`, connection refused), so each " +
      "message is deferred after its first attempt (retry in 1 h) and stays queued; the outbound side never reads a body " +
      "(it is read only after a connection succeeds). The figures isolate the **intake**.");
L();
L($"Process under test: `dotnet {Path.GetFileName(dll)} serve --config …` (pid of the dotnet host that runs the gateway; the " +
  $"load generator is another process). RSS sampled every {o.IntervalMs} ms from `/proc/<pid>/status` ({samples.Count:N0} samples); " +
  "VmHWM is the kernel's peak RSS since the process started (catches spikes between samples).");
L();
L("| point | VmRSS MiB | VmHWM MiB | RssAnon MiB | gateway CPU s |");
L("|---|---:|---:|---:|---:|");
void Row(string name, Sample? s) =>
    L(s is { } v ? $"| {name} | {Mib(v.RssKb):N0} | {Mib(v.HwmKb):N0} | {Mib(v.AnonKb):N0} | {v.CpuS:N1} |" : $"| {name} | – | – | – | – |");
Row($"listener ready (220 after {readySeconds:F1} s)", atReady);
Row($"**baseline** (idle {o.Settle:0.#} s after ready)", baseline);
Row($"**peak during the transfers** (highest sample, at +{peakTransfer.T - transferStart:F1} s)", peakTransfer);
Row("**after all 250s**", after250);
if (o.Deliver)
{
    Row($"peak while delivering (highest sample{(peakDelivery is { } pd ? $", at +{pd.T - transferEnd:F1} s after the last 250" : "")})", peakDelivery);
    Row(deliveredAt >= 0 ? $"after the last delivery (+{deliveredAt - transferEnd:F1} s after the last 250)" : "delivery timed out", afterDelivery);
}
Row($"**after {o.Idle:0.#} s idle**{(o.Deliver ? deliveredAt >= 0 ? " (after the last delivery)" : " (after the drain timeout)" : "")}", afterIdle);
L();
// The intake peak: VmHWM when the last 250 was read (the kernel's exact peak since start; the start-up stayed below
// the baseline), or the highest sample if that is higher.
var peakKb = Math.Max(peakTransfer.RssKb, after250?.HwmKb ?? 0);
var growth = Mib(peakKb - base0.RssKb);
L($"- Intake peak (VmHWM at the last 250) − baseline: {Mib(peakKb):N0} − {Mib(base0.RssKb):N0} = **{growth:N0} MiB** = {growth / o.Sessions:N0} MiB " +
  $"per session for a {o.SizeMb.ToString("0.##", inv)} MiB message ({growth / o.Sessions / o.SizeMb:N2}× the message size); " +
  $"highest 100 ms sample − baseline: {Mib(peakTransfer.RssKb - base0.RssKb):N0} MiB.");
L($"- Lowest RSS in the idle window: {Mib(samples.Where(s => s.Phase == "idle").DefaultIfEmpty(base0).Min(s => s.RssKb)):N0} MiB " +
  $"(highest {Mib(peakIdle.RssKb):N0}). An external process cannot force the gateway's GC, so this is what the runtime gives back by itself.");
L($"- Transfers: **{accepted.Count} of {total}** got 250; {acceptedBytes / 1048576.0:N0} MiB accepted in **{wall:N1} s** = " +
  $"**{acceptedBytes / 1048576.0 / Math.Max(wall, 1e-9):N1} MiB/s** ({acceptedBytes / 1e6 / Math.Max(wall, 1e-9):N1} MB/s); per message (MAIL → 250) " +
  (durations.Length > 0 ? $"min {durations[0]:N1} / median {durations[durations.Length / 2]:N1} / max {durations[^1]:N1} s." : "–."));
var failed = transfers.Where(t => t.Code != 250).ToList();
if (failed.Count > 0)
    L($"- Not accepted: {string.Join("; ", failed.GroupBy(t => t.Reply).Select(g => $"{g.Count()}× `{g.Key}`"))}");
L($"- Gateway CPU during the transfers: {(after250?.CpuS ?? 0) - base0.CpuS:N1} s ({((after250?.CpuS ?? 0) - base0.CpuS) / Math.Max(wall, 1e-9) * 100:N0} % of one core); " +
  $"threads {base0.Threads} → {peakTransfer.Threads} (at the peak).");
L($"- Spool on disk at the end: {spoolBytes / 1048576.0:N0} MiB in {segments} segment files; `ready` lines in the mail log: {readyLogged} " +
  $"({readyBytes / 1048576.0:N0} MiB stored); `Delayed` lines: {delayed}" +
  (receiver is not null ? $"; receiver: {receiver.Messages} messages, {receiver.Octets / 1048576.0:N0} MiB over {receiver.Connections} connections." : "."));
if (!o.Deliver && spoolBytes < readyBytes)
{
    // Without delivery nothing is finished, so every accepted body must still be in a segment file.
    L($"- **WARNING: the spool holds less than was accepted** ({spoolBytes / 1048576.0:N0} < {readyBytes / 1048576.0:N0} MiB): segment " +
      "files with queued (acked, undelivered) messages were deleted. A restart on this data directory would not recover them.");
    exit = exit == 0 ? 4 : exit;
}
foreach (var p in logProblems) L($"- mail log: `{p}`");
L($"- Load generator (this process, not measured above): peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:N0} MiB.");
L($"- Message: headers + text lines of words (40–78 characters, blank lines, 3 % long lines up to 998, some dot-stuffed), " +
  $"CRLF, exactly {size:N0} octets before the final dot; `MAIL FROM … SIZE={size}`; listener max-message-size {maxMessageSize:N0}.");
L($"- Gateway stop: {stopOutcome ?? "–"}.");
foreach (var n in notes) L($"- {n}");
L();
L($"Command: `dotnet run -c Release --project load-tests/IntakeMemoryBench{(args.Length > 0 ? " -- " + string.Join(' ', args) : "")}`");
L();
L("RSS over time (MiB, one value per second: the highest sample of that second; t = 0 at the start of the transfers):");
L();
L("```");
foreach (var g in samples.Where(s => s.T >= transferStart - 2 && s.Phase != "stop").GroupBy(s => (int)Math.Floor(s.T - transferStart)))
{
    var top = g.MaxBy(s => s.RssKb);
    L($"{g.Key,5} s  {top.Phase,-9} {Mib(top.RssKb),7:N0}  {new string('#', (int)Math.Round(Mib(top.RssKb) / 50))}");
}
L("```");

var report = md.ToString();
Console.WriteLine(report);
Directory.CreateDirectory(outDir);
await File.WriteAllTextAsync(Path.Combine(outDir, "report.md"), report);
await File.WriteAllLinesAsync(Path.Combine(outDir, "samples.csv"),
    new[] { "t_s,phase,vmrss_kb,vmhwm_kb,rssanon_kb,rssfile_kb,cpu_s,threads" }.Concat(samples.Select(s =>
        string.Create(inv, $"{s.T - transferStart:F3},{s.Phase},{s.RssKb},{s.HwmKb},{s.AnonKb},{s.FileKb},{s.CpuS:F2},{s.Threads}"))));
Say($"report: {outDir}/report.md (+ samples.csv)");
return exit;

// ---------------------------------------------------------------------------------------------------- helpers
void Say(string s) => Console.Error.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1}s] {s}");

static double Mib(long kb) => kb / 1024.0;

static string? RepoRoot()
{
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MtaSts.Actors.sln"))) return d.FullName;
    return null;
}

string Rel(string path) => Path.GetRelativePath(root, path);

string Git(string a) => ChildProcess.Git(root, a);

static string LoadAverage()
{
    try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
    catch (IOException) { return "?"; }
}

static double MemTotalGb()
{
    try
    {
        var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1048576.0;
    }
    catch (Exception ex) when (ex is IOException or InvalidOperationException or FormatException) { return 0; }
}

static string GcMode(string gatewayDll)
{
    var rc = Path.ChangeExtension(gatewayDll, ".runtimeconfig.json");
    var json = File.Exists(rc) ? File.ReadAllText(rc) : "";
    return json.Contains("\"System.GC.Server\": true", StringComparison.Ordinal) ? "server GC" : "workstation GC (runtime default)";
}

static long DirBytes(string dir) =>
    Directory.Exists(dir) ? new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;

internal partial class Program
{
    [GeneratedRegex(@"MID \d+ ready (\d+) bytes from")]
    private static partial Regex ReadyLine();
}
