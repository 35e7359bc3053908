using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MtaSts.Actors.DestinationMemoryBench;
using MtaSts.Actors.IntakeMemoryBench;
using MtaSts.Actors.LoadTests.Targets;

// Destination memory benchmark: a REAL gateway process (dotnet mtasts-gateway.dll serve, shipped hocon + a generated
// config) gets one message for each of N distinct destination domains while its next hop refuses connections, so every
// destination actor is started, tries once, defers (retry in 1 h) and holds its message. Then the receiver comes up, the
// gateway is told "deliver now" (SIGUSR1), every message is delivered, and the destinations are left idle until they
// passivate. Reported at each point: RSS (/proc) and the live managed heap by type (dotnet-gcdump, if installed).
// Usage: dotnet run -c Release --project load-tests/DestinationMemoryBench -- [--domains 100000] [--idle 300]
var clock = Stopwatch.StartNew();
var inv = CultureInfo.InvariantCulture;
var domains = Arg("--domains", 100_000);
var sessions = Arg("--sessions", 16);
var idle = Arg("--idle", 300);
var queueTimeout = Arg("--queue-timeout", 1800);
var drainTimeout = Arg("--drain-timeout", 1800);
var keep = args.Contains("--keep");
var noBuild = args.Contains("--no-build");
var noDump = args.Contains("--no-gcdump");
var gatewayDll = Str("--gateway-dll");
var mxIpConnections = Arg("--mx-ip-connections", 0);
var window = Arg("--deliver-window", 0);
if (args.Contains("--help") || args.Contains("-h"))
{
    Console.Error.WriteLine("""
        usage: dotnet run -c Release --project load-tests/DestinationMemoryBench -- [options]
          --domains N          distinct destination domains, one queued message each (default 100000)
          --sessions N         concurrent SMTP sessions injecting them (default 16)
          --idle S             seconds to wait after the last delivery for the destinations to passivate (default 300;
                               they passivate 2 min after their last message)
          --queue-timeout S    bound for "every destination deferred its message" (default 1800)
          --drain-timeout S    bound for the deliveries after "deliver now" (default 1800)
          --deliver-window N   0 (default): one "deliver now" for every destination at once (admin API, = SIGUSR1;
                               the node's connection limit, mtasts.delivery.max-connections, paces them — before it
                               existed 100,000 destinations opened ≈ 20,000 connections and the gateway died "Out of
                               memory"); N > 0: told per domain with at most N messages told and not yet delivered
          --mx-ip-connections N  limit-type = mx-ip with N connections at the next-hop address (default: off, the
                               shipped profile)
          --no-gcdump          RSS only (the managed heap needs dotnet-gcdump: dotnet tool install -g dotnet-gcdump)
          --gateway-dll PATH   gateway to run (default: build src/MtaSts.Actors.Host -c Release and run that)
          --no-build           run src/MtaSts.Actors.Host/bin/Release/net10.0/mtasts-gateway.dll as it is
          --out DIR            report directory (default load-tests/results/<timestamp>-destination-memory)
          --keep               keep the work directory (config, data dir, mail.log, gateway.out, heap dumps)
        exit: 0 ok; 1 a message was not accepted, deferred or delivered in time, or the gateway exited; 3 gateway build/start failed
        """);
    return 2;
}

using var abort = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    abort.Cancel();
};
// SIGTERM too (a background run ignores SIGINT): stop the gateway this bench started and clean up, then exit.
using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
{
    c.Cancel = true;
    abort.Cancel();
});
var root = RepoRoot();
if (root is null)
{
    Console.Error.WriteLine("destination-memory-bench: run it from the repository (MtaSts.Actors.sln not found above the current directory)");
    return 2;
}
var dll = gatewayDll ?? Path.Combine(root, "src", "MtaSts.Actors.Host", "bin", "Release", "net10.0", "mtasts-gateway.dll");
if (gatewayDll is null && !noBuild)
{
    Say("building src/MtaSts.Actors.Host (Release) ...");
    var (rc, output) = ChildProcess.Run("dotnet", ["build", Path.Combine(root, "src", "MtaSts.Actors.Host"), "-c", "Release", "-warnaserror", "-nologo",
        "-v", "q", "--disable-build-servers"], TimeSpan.FromMinutes(15));
    if (rc != 0)
    {
        Console.Error.WriteLine(output);
        return 3;
    }
}
if (!File.Exists(dll))
{
    Console.Error.WriteLine($"destination-memory-bench: {dll} not found");
    return 3;
}
var tool = noDump ? null : HeapDump.Tool();
var started = DateTime.Now;
var outDir = Str("--out") ?? Path.Combine(root, "load-tests", "results", $"{started:yyyyMMdd-HHmmss}-destination-memory");
var work = Path.Combine(Path.GetTempPath(), "mtasts-dest-bench-" + Guid.NewGuid().ToString("N")[..12]);
Directory.CreateDirectory(work);
var loadAverages = new List<(string Point, string Load)> { ("start", LoadAverage()) };
var nextHop = GatewayProcess.FreePort(); // nobody listens until the delivery phase
var notes = new List<string>();
var points = new List<Point>();
var exit = 0;
int accepted = 0, deferred = 0;
long delivered = 0;
double injectSeconds = 0, deferSeconds = 0, drainSeconds = 0;
GatewayProcess? gw = null;
RssSampler? sampler = null;
DiscardReceiver? receiver = null;
string? stopOutcome = null;
try
{
    // The shipped defaults (mx-rollup on, 2 s connection idle time, 30 s connect timeout: with 5 s, 905 of 100,000
    // connects timed out at the loaded receiver and waited for their 1 h retry) with the bench's listener and next hop;
    // the first retry after 1 h keeps every deferred message queued until "deliver now".
    gw = GatewayProcess.Start(dll, work, nextHop, 1 << 20, Math.Max(100, 2 * sessions), """
        mtasts.log.level = info

        """ + (mxIpConnections > 0 ? $$"""
        mtasts.destinations.default {
          limit-type = mx-ip
          max-concurrent-connections = {{mxIpConnections}}
        }

        """ : ""));
    sampler = new RssSampler(gw.Pid, clock, TimeSpan.FromMilliseconds(500));
    Say($"gateway pid {gw.Pid} on 127.0.0.1:{gw.Port}, next hop 127.0.0.1:{nextHop} (refused until the delivery phase), work {work}");
    if (await gw.WaitReadyAsync(TimeSpan.FromSeconds(180), abort.Token) is null)
    {
        Console.Error.WriteLine($"destination-memory-bench: the gateway did not answer 220\n{gw.OutputTail(20)}");
        return 3;
    }
    await Task.Delay(TimeSpan.FromSeconds(5), abort.Token);
    points.Add(Measure("baseline", "listener up, idle 5 s"));

    // 1. One message per domain; every destination starts, tries the refusing next hop once and defers.
    sampler.Phase = "inject";
    var log = new LogCounter(gw.MailLog, " Delayed: ", "journal write failed");
    var t0 = clock.Elapsed.TotalSeconds;
    var failures = new List<string>();
    var next = -1;
    await Task.WhenAll(Enumerable.Range(0, sessions).Select(s => Task.Run(async () =>
    {
        // Each session sends up to 500 messages on one connection, then reconnects (as a submitting MTA would).
        while (Volatile.Read(ref next) < domains - 1 && !abort.IsCancellationRequested)
        {
            lock (failures)
                if (failures.Count >= 100) return; // the gateway refuses: reported, no endless reconnects
            var failure = await SessionAsync(gw.Port, () => Interlocked.Increment(ref next) is var i && i < domains ? i : -1, 500,
                () => Interlocked.Increment(ref accepted), abort.Token);
            if (failure is not null) lock (failures) failures.Add(failure);
        }
    })));
    injectSeconds = clock.Elapsed.TotalSeconds - t0;
    Say($"{accepted:N0} of {domains:N0} accepted in {injectSeconds:F0} s");
    if (failures.Count > 0)
    {
        notes.Add($"not accepted: {string.Join("; ", failures.GroupBy(f => f).Take(5).Select(g => $"{g.Count()}× `{g.Key}`"))}");
        exit = 1;
    }
    sampler.Phase = "defer";
    var until = clock.Elapsed + TimeSpan.FromSeconds(queueTimeout);
    // A destination whose deferral write timed out (an overloaded box: the journal's 60 s call timeout) stops and is
    // resumed; when the late write had committed it recovers the deferral and waits without a second "Delayed" line,
    // so such a destination counts as holding its message (its failure line is counted, reported below).
    var journalFailed = 0;
    while ((deferred = log.Count(" Delayed: ")) + (journalFailed = log.Count("journal write failed")) < accepted && clock.Elapsed < until && !gw.HasExited)
    {
        await Task.Delay(2000, abort.Token);
        Say($"  {deferred:N0} deferred, {journalFailed:N0} journal writes failed, RSS {Mib(RssSampler.Read(gw.Pid, 0, "")?.RssKb ?? 0):N0} MiB");
    }
    if (journalFailed > 0)
        notes.Add($"{journalFailed:N0} deferral journal writes failed (timeout) while the destinations deferred; each such destination was resumed (mail in the spool)");
    deferSeconds = clock.Elapsed.TotalSeconds - t0;
    if (deferred < accepted)
    {
        notes.Add($"**only {deferred:N0} of {accepted:N0} messages deferred within {queueTimeout} s**");
        exit = 1;
    }
    await Task.Delay(TimeSpan.FromSeconds(5), abort.Token);
    points.Add(Measure("queued", $"{deferred:N0} destinations each hold one deferred message"));

    // 2. The receiver comes up; every destination is told "deliver now" at once (as SIGUSR1 does; the node's connection
    //    limit paces them), or per domain with at most `window` messages told and not yet delivered.
    receiver = new DiscardReceiver(nextHop);
    sampler.Phase = "drain";
    var t1 = clock.Elapsed.TotalSeconds;
    var admin = GatewayAdmin.Url(gw.MailLog) ?? throw new InvalidOperationException("no 'Admin endpoint on' line in the mail log");
    // Generous: a node that is still working off a 100,000-destination backlog answers late; that is reported, not fatal.
    using var http = new HttpClient { BaseAddress = new Uri(admin), Timeout = TimeSpan.FromMinutes(5) };
    until = clock.Elapsed + TimeSpan.FromSeconds(drainTimeout);
    var lastSay = clock.Elapsed;
    if (window == 0)
    {
        var asked = Stopwatch.StartNew();
        try
        {
            using var reply = await http.PostAsync("api/deliver-now", null, abort.Token);
            if (!reply.IsSuccessStatusCode) notes.Add($"deliver-now: HTTP {(int)reply.StatusCode}");
            if (asked.Elapsed > TimeSpan.FromSeconds(5)) notes.Add($"the admin API took {asked.Elapsed.TotalSeconds:F0} s to answer deliver-now");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !abort.IsCancellationRequested)
        {
            notes.Add($"**deliver-now through the admin API failed after {asked.Elapsed.TotalSeconds:F0} s ({ex.GetType().Name}); sent SIGUSR1 instead**");
            if (!gw.Signal(10)) notes.Add("SIGUSR1 could not be sent either");
        }
    }
    for (var i = 0; window > 0 && i < domains && clock.Elapsed < until && !gw.HasExited; i++)
    {
        while (i - receiver.Messages >= window && clock.Elapsed < until && !gw.HasExited) await Task.Delay(10, abort.Token);
        using var reply = await http.PostAsync($"api/deliver-now?domain=d{i.ToString("D6", inv)}.dest-bench.test", null, abort.Token);
        if (!reply.IsSuccessStatusCode && notes.Count < 20) notes.Add($"deliver-now d{i:D6}: HTTP {(int)reply.StatusCode}");
        if (clock.Elapsed - lastSay > TimeSpan.FromSeconds(5))
        {
            lastSay = clock.Elapsed;
            Say($"  told {i + 1:N0}, {receiver.Messages:N0} delivered over {receiver.Connections:N0} connections, RSS {Mib(RssSampler.Read(gw.Pid, 0, "")?.RssKb ?? 0):N0} MiB");
        }
    }
    var lastCount = -1L;
    var stalledSince = clock.Elapsed;
    var resent = 0;
    while (receiver.Messages < accepted && clock.Elapsed < until && !gw.HasExited)
    {
        await Task.Delay(2000, abort.Token);
        Say($"  {receiver.Messages:N0} delivered over {receiver.Connections:N0} connections (peak {receiver.PeakConcurrent:N0} at once), RSS {Mib(RssSampler.Read(gw.Pid, 0, "")?.RssKb ?? 0):N0} MiB");
        if (receiver.Messages != lastCount) (lastCount, stalledSince) = (receiver.Messages, clock.Elapsed);
        else if (clock.Elapsed - stalledSince > TimeSpan.FromSeconds(30) && resent < 5)
        {
            // A connection that timed out at the receiver while it came up is deferred for the 1 h retry (as it should
            // be); an operator would say "deliver now" again, and so does the bench (reported).
            resent++;
            stalledSince = clock.Elapsed;
            using var again = await http.PostAsync("api/deliver-now", null, abort.Token);
            notes.Add($"delivery stalled at {receiver.Messages:N0} of {accepted:N0} for 30 s (deferred after a connection timeout): deliver-now sent again");
        }
    }
    delivered = receiver.Messages;
    drainSeconds = clock.Elapsed.TotalSeconds - t1;
    if (delivered < accepted)
    {
        notes.Add($"**only {delivered:N0} of {accepted:N0} delivered within {drainTimeout} s**");
        exit = 1;
    }
    points.Add(Measure("delivered", $"{delivered:N0} delivered in {drainSeconds:F0} s over {receiver.Connections:N0} connections, at most {receiver.PeakConcurrent:N0} at once"));

    // 3. Idle: the destinations are empty and passivate (receive timeout, sharding's idle passivation).
    sampler.Phase = "idle";
    Say($"idle {idle} s for passivation ...");
    await Task.Delay(TimeSpan.FromSeconds(idle), abort.Token);
    points.Add(Measure("idle", $"{idle} s after the last delivery"));
    if (gw.HasExited)
    {
        notes.Add($"the gateway exited during the run (code {gw.ExitCode})");
        exit = 1;
    }
}
catch (OperationCanceledException) when (abort.IsCancellationRequested)
{
    Console.Error.WriteLine("destination-memory-bench: interrupted; cleaning up");
    exit = 130;
}
finally
{
    if (sampler is not null) sampler.Phase = "stop";
    if (gw is not null)
    {
        stopOutcome = await gw.StopForReportAsync(exit != 0, notes, TimeSpan.FromSeconds(60));
        Say($"gateway {stopOutcome}");
    }
    sampler?.Dispose();
    if (receiver is not null) await receiver.DisposeAsync();
    if (keep) Say($"work directory kept: {work}");
    else
    {
        try { Directory.Delete(work, recursive: true); }
        catch (IOException ex) { Console.Error.WriteLine($"could not delete {work}: {ex.Message}"); }
    }
}
if (exit == 130 || points.Count == 0) return exit == 0 ? 1 : exit;

// ---------------------------------------------------------------------------------------------------- report
var md = new StringBuilder();
void L(string line = "") => md.AppendLine(line);
L($"# Destination memory: {domains:N0} destination domains, one queued message each, then delivered and idle");
L();
L($"{started:yyyy-MM-dd HH:mm:ss} local; gateway `{Path.GetRelativePath(root, dll)}` at `{Git("rev-parse --short HEAD")}`" +
  $"{(Git("status --porcelain --untracked-files=no").Length > 0 ? " (uncommitted changes)" : "")}, .NET {Environment.Version}; " +
  $"{Environment.ProcessorCount} cores; load average (1/5/15 min) {string.Join(", ", loadAverages.Select(l => $"{l.Point} {l.Load}"))}.");
L();
L("The real gateway process (`dotnet mtasts-gateway.dll serve`: shipped hocon, single-node cluster sharding, SQLite " +
  "journal, mx-rollup on) with every domain sent to one loopback next hop (`mx-override \"*\"`) that refuses connections " +
  (mxIpConnections > 0 ? $"(`limit-type = mx-ip`, {mxIpConnections} connections at that address) " : "") +
  "until the delivery phase; first retry after 1 h. RSS from `/proc/<pid>/status`; the managed heap is what " +
  "`dotnet-gcdump collect` finds live after the full GC it induces (so RSS is read before the dump, and again after it).");
L();
L("| point | | VmRSS MiB | RssAnon MiB | RSS after the dump's GC | live managed heap MiB | DestinationActor | ActorCell | gateway CPU s |");
L("|---|---|---:|---:|---:|---:|---:|---:|---:|");
foreach (var p in points)
    L($"| **{p.Name}** | {p.What} | {Mib(p.Before.RssKb):N0} | {Mib(p.Before.AnonKb):N0} | {(p.After is { } a ? Mib(a.RssKb).ToString("N0", inv) : "–")} | " +
      $"{(p.Heap is { } h ? (h.TotalBytes / 1048576.0).ToString("N1", inv) : "–")} | {Count(p, "MtaSts.Actors.Engine.Destination.DestinationActor")} | " +
      $"{Count(p, "Akka.Actor.ActorCell")} | {p.Before.CpuS:N0} |");
L();
if (points.Any(p => p.Maps is not null))
{
    // After the dump (it ran a full GC): what the RSS consists of, so the destinations' share is not confused with the
    // runtime's code pages.
    L("Where the RSS lives (`/proc/<pid>/smaps`, read after the dump), MiB:");
    L();
    L("| point | anonymous (GC heap, native heap, stacks) | JIT code + loader heaps (memfd) | managed assemblies | native libraries | other | total |");
    L("|---|---:|---:|---:|---:|---:|---:|");
    foreach (var p in points.Where(p => p.Maps is not null))
        L($"| {p.Name} | {Mib(p.Maps!.AnonKb):N0} | {Mib(p.Maps.JitKb):N0} | {Mib(p.Maps.AssembliesKb):N0} | {Mib(p.Maps.NativeLibsKb):N0} | {Mib(p.Maps.OtherKb):N0} | {Mib(p.Maps.TotalKb):N0} |");
    L();
}
var base0 = points[0];
var queued = points.FirstOrDefault(p => p.Name == "queued");
var idlePoint = points.FirstOrDefault(p => p.Name == "idle");
if (queued is not null)
{
    L($"- **While {deferred:N0} destinations hold mail**: RSS +{Mib(queued.Before.RssKb - base0.Before.RssKb):N0} MiB over the baseline = " +
      $"**{(queued.Before.RssKb - base0.Before.RssKb) * 1024.0 / Math.Max(deferred, 1):N0} bytes per destination** (RSS)" +
      (queued.Heap is { } qh && base0.Heap is { } bh
          ? $"; live managed heap +{(qh.TotalBytes - bh.TotalBytes) / 1048576.0:N1} MiB = **{(qh.TotalBytes - bh.TotalBytes) / (double)Math.Max(deferred, 1):N0} bytes per destination with its queued message** (managed)."
          : "."));
}
if (idlePoint is not null)
{
    L($"- **Idle** ({idle} s after the last delivery): the whole gateway process RSS **{Mib(idlePoint.Before.RssKb):N0} MiB** " +
      $"({(idlePoint.After is { } ia ? $"{Mib(ia.RssKb):N0} MiB after the dump's GC; " : "")}baseline {Mib(base0.Before.RssKb):N0} MiB)" +
      (idlePoint.Heap is { } ih && base0.Heap is { } bh2
          ? $"; live managed heap {ih.TotalBytes / 1048576.0:N1} MiB, +{(ih.TotalBytes - bh2.TotalBytes) / 1048576.0:N1} MiB over the baseline = " +
            $"{(ih.TotalBytes - bh2.TotalBytes) / (double)Math.Max(accepted, 1):N0} bytes per domain that once had mail."
          : "."));
}
L($"- Injection: {accepted:N0} of {domains:N0} accepted in {injectSeconds:F0} s ({accepted / Math.Max(injectSeconds, 1e-9):N0} msg/s, {sessions} sessions); " +
  $"all deferred {deferSeconds:F0} s after the first; delivery of {delivered:N0} after \"deliver now\" (" +
  (window == 0 ? "all destinations at once" : $"per domain, at most {window} told and not yet delivered") +
  $"): {drainSeconds:F0} s, at most {receiver?.PeakConcurrent ?? 0:N0} connections at once.");
L($"- Gateway stop: {stopOutcome ?? "–"}.");
if (tool is null && !noDump) L("- No managed heap figures: dotnet-gcdump is not installed (`dotnet tool install -g dotnet-gcdump`).");
foreach (var n in notes) L($"- {n}");
L();
if (queued?.Heap is { } q && base0.Heap is { } b)
    TypeTable($"What holding mail costs: types by live bytes added between baseline and queued (per destination = ÷ {deferred:N0})", b, q, deferred);
if (idlePoint?.Heap is { } i2 && base0.Heap is { } b2)
    TypeTable($"What stays after passivation: types by live bytes added between baseline and idle (per domain = ÷ {accepted:N0})", b2, i2, accepted);
L($"Command: `dotnet run -c Release --project load-tests/DestinationMemoryBench{(args.Length > 0 ? " -- " + string.Join(' ', args) : "")}`");

var report = md.ToString();
Console.WriteLine(report);
Directory.CreateDirectory(outDir);
await File.WriteAllTextAsync(Path.Combine(outDir, "report.md"), report);
if (sampler is not null)
    await File.WriteAllLinesAsync(Path.Combine(outDir, "samples.csv"),
        new[] { "t_s,phase,vmrss_kb,vmhwm_kb,rssanon_kb,rssfile_kb,cpu_s,threads" }.Concat(sampler.Samples.Select(s =>
            string.Create(inv, $"{s.T:F3},{s.Phase},{s.RssKb},{s.HwmKb},{s.AnonKb},{s.FileKb},{s.CpuS:F2},{s.Threads}"))));
Say($"report: {outDir}/report.md (+ samples.csv)");
return exit;

// ---------------------------------------------------------------------------------------------------- helpers
Point Measure(string name, string what)
{
    loadAverages.Add((name, LoadAverage()));
    var before = RssSampler.Read(gw!.Pid, clock.Elapsed.TotalSeconds, name) ?? default;
    HeapDump? heap = null;
    Sample? after = null;
    if (tool is not null)
    {
        heap = HeapDump.Collect(tool, gw.Pid, Path.Combine(work, $"{name}.gcdump"), out var error);
        if (heap is null) notes.Add($"{name}: {error}");
        after = RssSampler.Read(gw.Pid, clock.Elapsed.TotalSeconds, name);
    }
    var maps = SmapsBreakdown.Read(gw.Pid);
    Say($"{name}: RSS {Mib(before.RssKb):N0} MiB{(heap is not null ? $", managed heap {heap.TotalBytes / 1048576.0:N1} MiB (dump {heap.Seconds:F0} s), RSS after the dump {Mib(after?.RssKb ?? 0):N0} MiB" : "")}");
    return new Point(name, what, before, after, heap, maps);
}

string Count(Point p, string type) => p.Heap?.Types.TryGetValue(type, out var t) == true ? t.Count.ToString("N0", inv) : p.Heap is null ? "–" : "0";

void TypeTable(string title, HeapDump from, HeapDump to, int per)
{
    L($"{title}:");
    L();
    L("| type | live bytes added | objects added | bytes per destination | objects per destination |");
    L("|---|---:|---:|---:|---:|");
    var rows = to.Types.Select(kv =>
    {
        var (bytes, count) = from.Types.GetValueOrDefault(kv.Key);
        return (Type: kv.Key, Bytes: kv.Value.Bytes - bytes, Count: kv.Value.Count - count);
    }).Where(r => r.Bytes > 0).OrderByDescending(r => r.Bytes).Take(25).ToList();
    foreach (var r in rows)
        L($"| `{r.Type}` | {r.Bytes:N0} | {r.Count:N0} | {r.Bytes / (double)Math.Max(per, 1):N1} | {r.Count / (double)Math.Max(per, 1):N2} |");
    L();
}

// One SMTP session: up to `max` messages, each to one new domain; returns the first failure (the session then ends).
static async Task<string?> SessionAsync(int port, Func<int> nextDomain, int max, Action accepted, CancellationToken ct)
{
    var i = -1;
    try
    {
        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(IPAddress.Loopback, port, ct).ConfigureAwait(false);
        using var wire = new SmtpWire(tcp.GetStream());
        var greeting = await wire.ReadReplyAsync(ct).ConfigureAwait(false);
        if (greeting.Code != 220) return $"greeting: {greeting.Text}";
        await wire.WriteAsync("EHLO client.dest-bench.invalid\r\n", ct).ConfigureAwait(false);
        var ehlo = await wire.ReadReplyAsync(ct).ConfigureAwait(false);
        if (ehlo.Code != 250) return $"EHLO: {ehlo.Text}";
        for (var n = 0; n < max && (i = nextDomain()) >= 0; n++)
        {
            var domain = $"d{i.ToString("D6", CultureInfo.InvariantCulture)}.dest-bench.test";
            // PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write, their replies in order.
            await wire.WriteAsync($"MAIL FROM:<bench@sender.dest-bench.test>\r\nRCPT TO:<user@{domain}>\r\nDATA\r\n", ct).ConfigureAwait(false);
            foreach (var (code, step) in new[] { (250, "MAIL"), (250, "RCPT"), (354, "DATA") })
                if (await wire.ReadReplyAsync(ct).ConfigureAwait(false) is var r && r.Code != code) return $"{step}: {r.Text}";
            await wire.WriteAsync($"From: <bench@sender.dest-bench.test>\r\nTo: <user@{domain}>\r\nSubject: destination memory bench {i}\r\n" +
                $"Message-ID: <{i}.{Guid.NewGuid():N}@dest-bench.test>\r\n\r\nOne queued message for destination {domain}.\r\n.\r\n", ct).ConfigureAwait(false);
            var (final, text) = await wire.ReadReplyAsync(ct).ConfigureAwait(false);
            if (final != 250) return $"DATA end: {text}";
            accepted();
        }
        await wire.WriteAsync("QUIT\r\n", ct).ConfigureAwait(false);
        return null;
    }
    catch (Exception ex) when (ex is IOException or SocketException)
    {
        return $"{ex.GetType().Name}: {ex.Message}" + (i >= 0 ? $" (domain {i})" : "");
    }
}

void Say(string s) => Console.Error.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1}s] {s}");

static double Mib(long kb) => kb / 1024.0;

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) && v > 0 ? v : fallback;
}

string? Str(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

static string? RepoRoot()
{
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MtaSts.Actors.sln"))) return d.FullName;
    return null;
}

string Git(string a) => ChildProcess.Git(root, a);

static string LoadAverage()
{
    try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
    catch (IOException) { return "?"; }
}

internal sealed record Point(string Name, string What, Sample Before, Sample? After, HeapDump? Heap, SmapsBreakdown? Maps);

/// <summary>Counts lines of the operator log containing each marker, reading only what was appended since the last call.</summary>
internal sealed class LogCounter(string path, params string[] markers)
{
    private long _offset;
    private readonly int[] _counts = new int[markers.Length];
    private string _partial = "";

    public int Count(string marker)
    {
        var i = Array.IndexOf(markers, marker);
        if (i < 0) throw new ArgumentException($"not a marker of this counter: {marker}", nameof(marker));
        if (!File.Exists(path)) return _counts[i];
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        fs.Seek(_offset, SeekOrigin.Begin);
        using var r = new StreamReader(fs);
        var text = _partial + r.ReadToEnd();
        _offset = fs.Position;
        var lines = text.Split('\n');
        _partial = lines[^1];
        foreach (var line in lines.AsSpan(0, lines.Length - 1))
            for (var m = 0; m < markers.Length; m++)
                if (line.Contains(markers[m], StringComparison.Ordinal)) _counts[m]++;
        return _counts[i];
    }
}
