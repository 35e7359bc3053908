using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MtaSts.Actors.Admin;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Logging;
using MtaSts.Actors.TestInfra.Smtp;

// What recording metrics costs per relayed message, measured precisely where the relay benchmark's run-to-run noise
// cannot resolve it. 1) A real gateway (in process) relays N messages to an in-process receiver while every operator
// log event it writes is recorded (the recorder is an observer, so debug-level events are recorded too). 2) That event
// stream is replayed through the same gateway's log, alternately without an observer (mtasts.admin.metrics = off) and
// with GatewayMetrics attached (on); no log file, so only what metrics add differs. 3) One /metrics scrape is timed.
// Usage: dotnet run -c Release --project load-tests/MetricsBench -- [--messages 2000] [--rounds 10] [--cpu-ms-per-message 1.0]
var messages = Arg("--messages", 2000);
var rounds = Arg("--rounds", 10);
var cpuMsPerMessage = double.Parse(ArgString("--cpu-ms-per-message", "1.0"), CultureInfo.InvariantCulture);
Console.WriteLine($"metrics benchmark: {Environment.ProcessorCount} cores, load average at start {LoadAverage()}");

var dir = Directory.CreateTempSubdirectory("metricsbench-").FullName;
await using var receiver = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { OfferStartTls = false });
var gw = await Gateway.StartAsync(GatewayConfig.Load(GatewayConfig.DefaultFiles(), $$"""
    mtasts {
      data-dir = "{{Path.Combine(dir, "data")}}"
      listener.endpoints = ["127.0.0.1:0"]
      delivery.mx-override { "*" = "127.0.0.1:{{receiver.Port}}" }
      dns { servers = ["127.0.0.1:9"], timeout = 1s, retries = 0 }
      log.text = ""
    }
    mtasts.destinations.default { tls-support = none, mta-sts = off }
    """));
try
{
    // 1. Record the events of N relayed messages (20 sessions of 100 messages, 2 KB each, one destination).
    var recorded = new List<MailLogEntry>();
    void Record(MailLogEntry e) { lock (recorded) recorded.Add(e); }
    gw.Log.Written += Record;
    var sw = Stopwatch.StartNew();
    var port = gw.SmtpEndpoints[0].Port;
    var perSession = 100;
    var sessions = Enumerable.Range(0, (messages + perSession - 1) / perSession).Select(s => (Start: s * perSession, Count: Math.Min(perSession, messages - s * perSession)));
    await Parallel.ForEachAsync(sessions, new ParallelOptions { MaxDegreeOfParallelism = 20 }, async (s, ct) => await SubmitAsync(port, s.Start, s.Count, ct));
    var arrived = await receiver.WaitForMessagesAsync(messages, TimeSpan.FromMinutes(5));
    await Task.Delay(2000); // the last delivery connections' close lines
    gw.Log.Written -= Record;
    if (arrived.Count < messages) throw new InvalidOperationException($"only {arrived.Count} of {messages} delivered");
    MailLogEntry[] events;
    lock (recorded) events = recorded.ToArray();
    Console.WriteLine($"relayed {messages} messages in {sw.Elapsed.TotalSeconds:0.0} s; {events.Length} log events recorded = " +
                      $"{(double)events.Length / messages:0.0} per message ({events.Count(e => !gw.Log.IsEnabled(e.Level)) / (double)messages:0.0} below the log level)");
    Console.WriteLine("events per message by name: " + string.Join(", ", events.GroupBy(e => e.Event).OrderByDescending(g => g.Count())
        .Select(g => $"{g.Key} {g.Count() / (double)messages:0.##}")));

    // 2. Replay, alternating off / on; the first round of each is a warm-up (JIT). A round replays the stream `repeat`
    //    times. Process CPU time (the gateway is idle meanwhile) is not inflated by other processes on a shared box;
    //    wall-clock time is.
    const int repeat = 10;
    var results = new List<(bool On, double NsPerMessage, double CpuNsPerMessage, double BytesPerMessage)>();
    using var self = Process.GetCurrentProcess();
    for (var round = 0; round <= rounds; round++)
    foreach (var on in new[] { false, true })
    {
        var metrics = on ? new GatewayMetrics(gw, 50) : null;
        try
        {
            GC.Collect();
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            self.Refresh();
            var cpu = self.TotalProcessorTime;
            var t = Stopwatch.GetTimestamp();
            for (var i = 0; i < repeat; i++)
                foreach (var e in events) gw.Log.Write(e.Level, e.Event, e.Text, [.. e.Fields]);
            var elapsed = Stopwatch.GetElapsedTime(t);
            self.Refresh();
            var cpuUsed = self.TotalProcessorTime - cpu;
            var allocated = GC.GetAllocatedBytesForCurrentThread() - bytes;
            var n = (double)messages * repeat;
            if (round > 0) results.Add((on, elapsed.TotalNanoseconds / n, cpuUsed.TotalNanoseconds / n, allocated / n));
        }
        finally { metrics?.Dispose(); }
    }
    double Median(IEnumerable<double> v) { var a = v.Order().ToArray(); return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2; }
    var offNs = Median(results.Where(r => !r.On).Select(r => r.NsPerMessage));
    var onNs = Median(results.Where(r => r.On).Select(r => r.NsPerMessage));
    var offCpu = Median(results.Where(r => !r.On).Select(r => r.CpuNsPerMessage));
    var onCpu = Median(results.Where(r => r.On).Select(r => r.CpuNsPerMessage));
    var offBytes = Median(results.Where(r => !r.On).Select(r => r.BytesPerMessage));
    var onBytes = Median(results.Where(r => r.On).Select(r => r.BytesPerMessage));
    Console.WriteLine();
    Console.WriteLine($"| replay of one message's log events ({rounds} rounds × {repeat} replays each, median) | metrics off | metrics on | on − off |");
    Console.WriteLine("|---|---:|---:|---:|");
    Console.WriteLine($"| process CPU time per message | {offCpu / 1000:0.00} µs | {onCpu / 1000:0.00} µs | **{(onCpu - offCpu) / 1000:0.00} µs** |");
    Console.WriteLine($"| wall-clock time per message (one thread) | {offNs / 1000:0.00} µs | {onNs / 1000:0.00} µs | {(onNs - offNs) / 1000:0.00} µs |");
    Console.WriteLine($"| allocated per message | {offBytes:0} B | {onBytes:0} B | {onBytes - offBytes:0} B |");
    Console.WriteLine($"| spread of the rounds' CPU (min–max µs) | {results.Where(r => !r.On).Min(r => r.CpuNsPerMessage) / 1000:0.00}–{results.Where(r => !r.On).Max(r => r.CpuNsPerMessage) / 1000:0.00} " +
                      $"| {results.Where(r => r.On).Min(r => r.CpuNsPerMessage) / 1000:0.00}–{results.Where(r => r.On).Max(r => r.CpuNsPerMessage) / 1000:0.00} | |");
    Console.WriteLine($"\nmetrics add {(onCpu - offCpu) / 1000:0.00} µs CPU per message = {(onCpu - offCpu) / 1e6 / cpuMsPerMessage * 100:0.00} % of {cpuMsPerMessage:0.00} ms gateway CPU per message " +
                      "(--cpu-ms-per-message: what the relay benchmark measured)");

    // 3. One scrape (the deepest 50 destinations, every collector), after a warm-up scrape.
    using (var metrics = new GatewayMetrics(gw, 50))
    {
        foreach (var e in events) gw.Log.Write(e.Level, e.Event, e.Text, [.. e.Fields]);
        using var sink = new MemoryStream();
        await metrics.Registry.CollectAndExportAsTextAsync(sink);
        var scrapes = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            sink.SetLength(0);
            var t = Stopwatch.GetTimestamp();
            await metrics.Registry.CollectAndExportAsTextAsync(sink);
            scrapes.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds);
        }
        Console.WriteLine($"one /metrics scrape (collect + text, {sink.Length} bytes, queue empty): median {Median(scrapes):0} µs");
    }
}
finally
{
    await gw.DisposeAsync();
    try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
}
Console.WriteLine($"load average at end {LoadAverage()}");

async Task SubmitAsync(int smtpPort, int first, int count, CancellationToken ct)
{
    using var tcp = new TcpClient();
    await tcp.ConnectAsync(IPAddress.Loopback, smtpPort, ct);
    using var s = tcp.GetStream();
    using var r = new StreamReader(s, Encoding.ASCII);
    async Task<string> Cmd(string line)
    {
        if (line.Length > 0) await s.WriteAsync(Encoding.ASCII.GetBytes(line + "\r\n"), ct);
        string reply;
        do reply = await r.ReadLineAsync(ct) ?? throw new IOException("closed"); while (reply.Length > 3 && reply[3] == '-');
        return reply;
    }
    await Cmd("");
    await Cmd("EHLO bench.test");
    var body = "Subject: metrics bench\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 76) + "\r\n", 26));
    for (var i = first; i < first + count; i++)
    {
        await Cmd("MAIL FROM:<bench@sender.test>");
        var rcpt = await Cmd($"RCPT TO:<m{i}@bench.test>");
        if (!rcpt.StartsWith("250", StringComparison.Ordinal)) throw new InvalidOperationException(rcpt);
        await Cmd("DATA");
        var done = await Cmd(body + ".");
        if (!done.StartsWith("250", StringComparison.Ordinal)) throw new InvalidOperationException(done);
    }
    await Cmd("QUIT");
}

int Arg(string name, int fallback) => ArgString(name, fallback.ToString(CultureInfo.InvariantCulture)) is var v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
string ArgString(string name, string fallback) { var i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback; }
static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
