using System.Diagnostics;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;

// Queue memory benchmark: live managed bytes per queued message in each structure that holds a queued message —
// the spool index, the pending index and the destination queue — built with the real types exactly as the gateway
// builds them (spool append → dispatcher refs shared by the pending index and the queue), then deferred once as a
// down destination does. Complements the `backlog` load test, which measures the whole process (RSS/PSS).
// The gateway's defaults: a compact pending index and a window of 1,000 messages per destination (the rest MID + RIDs);
// `--window 0 --full-index` measures the unpaged layout (every queued message with its envelope in both structures).
// Usage: dotnet run -c Release --project load-tests/QueueMemoryBench -- [--messages 200000] [--domains 100] [--window 1000] [--full-index]
var messages = Arg("--messages", 200_000);
var domains = Arg("--domains", 100);
var queueWindow = Arg("--window", -1) switch { -1 when args.Contains("--window") => int.MaxValue, -1 => 1000, var n => n };
var compact = !args.Contains("--full-index");
var dir = Path.Combine(Path.GetTempPath(), "mtasts-queue-memory-" + Guid.NewGuid().ToString("N"));
try
{
    Console.WriteLine($"queue memory benchmark: {messages:N0} messages, 1 recipient each, {domains} destination domains, " +
        $"window {(queueWindow == int.MaxValue ? "none" : queueWindow.ToString("N0"))} per destination, {(compact ? "compact" : "full")} pending index, .NET {Environment.Version}");
    var spool = new SegmentSpool(new SegmentSpoolOptions(dir), MailLog.Null);
    spool.Recover();
    PendingIndex index = new(compact);
    DestinationQueue[] queues = Enumerable.Range(0, domains).Select(_ => new DestinationQueue(queueWindow)).ToArray();
    var now = DateTimeOffset.UtcNow;
    var body = new byte[2048];

    long baseline = Live();
    var sw = Stopwatch.StartNew();
    var spooled = new SpooledMessage[messages];
    // Appends are group-committed: keep many in flight, as concurrent SMTP sessions do.
    const int window = 256;
    for (var start = 0; start < messages; start += window)
    {
        var n = Math.Min(window, messages - start);
        var tasks = new Task<SpooledMessage>[n];
        for (var i = 0; i < n; i++)
        {
            var mid = start + i + 1;
            var env = new Envelope($"sender{mid % 50}@load.test", [new Recipient(0, $"user{mid}@d{mid % domains:D5}.test")],
                now, Icid: mid / 100, ClientHelo: "load-generator", ClientAddress: "127.0.0.1");
            tasks[i] = spool.AppendAsync(mid, env, body);
        }
        for (var i = 0; i < n; i++) spooled[start + i] = await tasks[i];
    }
    Console.WriteLine($"spooled in {sw.Elapsed.TotalSeconds:N1} s");

    // Dispatcher: one MessageRef and one recipient array per (message, domain), shared by the index and the queue.
    for (var i = 0; i < messages; i++)
    {
        var m = spooled[i];
        var env = m.Envelope;
        var msgRef = new MessageRef(m.Mid, env.ReversePath, env.ReceivedAt, m.BodyLength, env.EnvId, env.Ret, env.EightBitMime, env.SmtpUtf8);
        var rcpts = env.Recipients.Select(r => new RecipientRef(r.Rid, r.Address, r.Notify, r.OriginalRecipient)).ToArray();
        var domain = env.Recipients[0].Domain;
        index.Add(MtaSts.Actors.Dns.DestinationDomain.Parse(domain), msgRef, rcpts);
        queues[i % domains].Enqueue(msgRef, rcpts, now);
    }
    spooled = null!;
    long queued = Live();

    // A down destination: every recipient deferred once (what the backlog scenario does to every queued message).
    var reason = "4.4.1 - connection refused";
    foreach (var q in queues)
        while (q.TakeDue(now) is { } t)
            foreach (var r in t.Recipients) q.Defer(t.Message.Mid, r.Ref.Rid, 1, now.AddMinutes(1), reason);
    long deferred = Live();

    // Attribution: release the structures one by one (what a structure alone keeps alive is what its release frees).
    var (inWindows, beyond) = (queues.Sum(q => q.WindowCount), queues.Sum(q => q.OverflowCount));
    queues = null!;
    long withoutQueues = Live();
    index = null!;
    long spoolOnly = Live();

    double Per(long bytes) => bytes / (double)messages;
    Console.WriteLine();
    Console.WriteLine("| structure | bytes per queued message |");
    Console.WriteLine("|---|---:|");
    Console.WriteLine($"| spool index | {Per(spoolOnly - baseline):N0} |");
    Console.WriteLine($"| pending index (with the message/recipient refs and address strings) | {Per(withoutQueues - spoolOnly):N0} |");
    Console.WriteLine($"| destination queues (after one deferral; {inWindows:N0} messages in windows, {beyond:N0} beyond) | {Per(deferred - withoutQueues):N0} |");
    Console.WriteLine($"| of which deferral state | {Per(deferred - queued):N0} |");
    Console.WriteLine($"| **total live** | **{Per(deferred - baseline):N0}** |");
    Console.WriteLine($"\nextrapolated to 1,000,000 queued messages: {(deferred - baseline) * (1_000_000.0 / messages) / (1 << 20):N0} MiB of live managed memory");
    await spool.DisposeAsync();
}
finally
{
    try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
}
return 0;

static long Live()
{
    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
    GC.WaitForPendingFinalizers();
    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
    return GC.GetTotalMemory(forceFullCollection: false);
}

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) && v > 0 ? v : fallback;
}
