using MtaSts.Actors.TestInfra.Net;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.CrashDriver;

/// <summary>
/// Crash test: the gateway runs as a real OS process (<c>dotnet mtasts-gateway.dll serve</c>) delivering every domain
/// to an in-process counting receiver; N MailKit submitters send unique-id messages (X-Crash-Id) while the gateway is
/// SIGKILLed at random moments and restarted on the same data directory. At the end every (id, recipient) whose
/// message got a 250 must have been delivered at least once; duplicates are counted and reported, not failed.
/// </summary>
public static class Program
{
    private const string IdHeader = "X-Crash-Id";
    private const string Sender = "crash@sender.test";

    public static async Task<int> Main(string[] args)
    {
        Options o;
        try { o = Options.Parse(args); }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine($"crash-driver: {ex.Message}");
            Console.Error.WriteLine(Options.Usage);
            return 2;
        }
        try
        {
            return await new CrashRun(o).RunAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"crash-driver: aborted: {ex}");
            return 3;
        }
    }

    internal sealed record Options
    {
        public const string Usage = """
            usage: crash-driver --gateway PATH/mtasts-gateway.dll --work DIR [--submitters 8] [--kills 5]
                                [--startup-kills 1] [--min-gap 2] [--max-gap 6] [--tail 4] [--rate 100]
                                [--drain-timeout 120] [--seed N]
            """;
        public string GatewayDll { get; init; } = "";
        public string WorkDir { get; init; } = "";
        public int Submitters { get; init; } = 8;
        public int Kills { get; init; } = 5;
        /// <summary>How many of the kills hit a gateway that is still starting (spool recovery, Akka, sharding).</summary>
        public int StartupKills { get; init; } = 1;
        public double MinGap { get; init; } = 2;
        public double MaxGap { get; init; } = 6;
        /// <summary>Seconds of load on the last gateway after the last restart.</summary>
        public double Tail { get; init; } = 4;
        /// <summary>Upper bound of submissions per second over all submitters (0 = unthrottled).</summary>
        public double Rate { get; init; } = 100;
        public double DrainTimeout { get; init; } = 120;
        public int Seed { get; init; } = Environment.TickCount;

        public static Options Parse(string[] args)
        {
            var o = new Options();
            for (var i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                double D() => double.Parse(Next(), CultureInfo.InvariantCulture);
                int I() => int.Parse(Next(), CultureInfo.InvariantCulture);
                o = args[i] switch
                {
                    "--gateway" => o with { GatewayDll = Path.GetFullPath(Next()) },
                    "--work" => o with { WorkDir = Path.GetFullPath(Next()) },
                    "--submitters" => o with { Submitters = I() },
                    "--kills" => o with { Kills = I() },
                    "--startup-kills" => o with { StartupKills = I() },
                    "--min-gap" => o with { MinGap = D() },
                    "--max-gap" => o with { MaxGap = D() },
                    "--tail" => o with { Tail = D() },
                    "--rate" => o with { Rate = D() },
                    "--drain-timeout" => o with { DrainTimeout = D() },
                    "--seed" => o with { Seed = I() },
                    _ => throw new ArgumentException($"unknown argument '{args[i]}'"),
                };
            }
            if (!File.Exists(o.GatewayDll)) throw new ArgumentException($"--gateway: '{o.GatewayDll}' not found");
            if (o.WorkDir.Length == 0) throw new ArgumentException("--work is required");
            if (o.Submitters < 1 || o.Kills < 0 || o.StartupKills > o.Kills || o.MinGap > o.MaxGap)
                throw new ArgumentException("inconsistent numbers");
            return o;
        }
    }

    private enum Outcome { Pending, Acked, Rejected, Unknown }

    private sealed class Submission(long id, string[] recipients, int generation)
    {
        public long Id { get; } = id;
        public string[] Recipients { get; } = recipients;
        public int Generation { get; } = generation;
        public volatile Outcome Outcome = Outcome.Pending;
        public string Detail = "";
    }

    private sealed class CrashRun(Options o)
    {
        private static readonly string[] Domains = ["alpha.test", "bravo.test", "charlie.test", "delta.test", "echo.test"];
        private readonly Random _rng = new(o.Seed);
        private readonly ConcurrentDictionary<long, Submission> _subs = new();
        private readonly Dictionary<(long Id, string Rcpt), int> _deliveries = new();
        private readonly List<string> _foreign = new();
        private int _receiverProcessed;
        private long _nextId;
        private volatile int _generation;
        private volatile bool _stopSubmitting;
        private string _dataDir = "", _confPath = "", _jsonLog = "";
        private int _port;
        private TimeSpan _lastStartup = TimeSpan.FromSeconds(3);
        private TestSmtpReceiver _receiver = null!;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly SemaphoreSlim _rate = new(0, int.MaxValue);

        private void Say(string s) => Console.WriteLine($"[{_clock.Elapsed.TotalSeconds,6:F1}s] {s}");

        public async Task<int> RunAsync()
        {
            Directory.CreateDirectory(o.WorkDir);
            _dataDir = Path.Combine(o.WorkDir, "data");
            _confPath = Path.Combine(o.WorkDir, "crash.conf");
            _jsonLog = Path.Combine(_dataDir, "mail.json");
            _port = LoopbackPort.Free();
            await using var receiver = TestSmtpReceiver.Start(new TestSmtpReceiverOptions { Hostname = "mx.crash.test" });
            _receiver = receiver;
            Directory.CreateDirectory(_dataDir);
            var dd = _dataDir.Replace("\\", "/");
            await File.WriteAllTextAsync(_confPath, $$"""
                mtasts {
                  data-dir = "{{dd}}"
                  listener.endpoints = ["127.0.0.1:{{_port}}"]
                  admin.endpoints = ["127.0.0.1:0"]
                  delivery {
                    mx-override { "*" = "127.0.0.1:{{receiver.Port}}" }
                    connection-idle-time = 500ms
                  }
                  log.text = "{{dd}}/mail.log"
                  log.json = "{{dd}}/mail.json"
                }
                mtasts.destinations.default.tls-support = none
                mtasts.destinations.default.mta-sts = off
                mtasts.bounce-profiles.default.initial-retry-interval = 1s

                """).ConfigureAwait(false);
            Say($"crash test: seed {o.Seed}, {o.Submitters} submitters, rate ≤ {o.Rate}/s, {o.Kills} SIGKILLs " +
                $"({o.StartupKills} during start-up), gaps {o.MinGap}-{o.MaxGap}s; gateway 127.0.0.1:{_port}, " +
                $"receiver 127.0.0.1:{receiver.Port}, work {o.WorkDir}");

            // Which kills hit a starting gateway: spread them after the first one (the first gateway starts empty).
            var startupKillAt = new HashSet<int>();
            while (startupKillAt.Count < o.StartupKills) startupKillAt.Add(o.Kills <= 1 ? 0 : 1 + _rng.Next(o.Kills - 1));

            using var rateCts = new CancellationTokenSource();
            var rateTask = o.Rate > 0 ? Task.Run(() => RefillAsync(rateCts.Token)) : Task.CompletedTask;
            var gw = StartGateway();
            if (!await WaitReadyAsync(gw).ConfigureAwait(false)) return Fail(gw, "first gateway did not start");
            var submitters = Enumerable.Range(0, o.Submitters).Select(i => Task.Run(() => SubmitLoopAsync(i))).ToArray();

            var kills = new List<string>();
            for (var k = 0; k < o.Kills; k++)
            {
                if (startupKillAt.Contains(k))
                {
                    // Kill while it is starting: spool recovery, Akka cluster join, sharding journal, first deliveries.
                    // The moment is a random fraction of the previous start-up time (so it lands before or just after
                    // the listener opens, whatever the machine's speed).
                    var delay = _lastStartup.TotalSeconds * (0.3 + _rng.NextDouble() * 0.9);
                    await Task.Delay(TimeSpan.FromSeconds(delay)).ConfigureAwait(false);
                    var state = CanConnect() ? "already listening" : SpoolOpenCounts(gw.LogOffset).Count > 0 ? "recovering" : "starting";
                    Kill(gw);
                    kills.Add($"#{k + 1} gen {gw.Generation} {delay:F1}s after spawn ({state}), " +
                        $"{Delivered(gw)} deliveries in this generation");
                }
                else
                {
                    // A random moment 2-6 s after the listener opened, but never before this process has started
                    // delivering (its start-up can take seconds): the kill must also hit deliveries in flight.
                    var gap = o.MinGap + _rng.NextDouble() * (o.MaxGap - o.MinGap);
                    var killAt = _clock.Elapsed + TimeSpan.FromSeconds(gap);
                    var waitUntil = _clock.Elapsed + TimeSpan.FromSeconds(30);
                    while (Delivered(gw) == 0 && _clock.Elapsed < waitUntil) await Task.Delay(50).ConfigureAwait(false);
                    var afterFirst = _clock.Elapsed + TimeSpan.FromSeconds(0.3 + _rng.NextDouble() * 2.2);
                    if (afterFirst > killAt) killAt = afterFirst;
                    var wait = killAt - _clock.Elapsed;
                    if (wait > TimeSpan.Zero) await Task.Delay(wait).ConfigureAwait(false);
                    var readyFor = (_clock.Elapsed - gw.ReadyAt).TotalSeconds;
                    Kill(gw);
                    kills.Add($"#{k + 1} gen {gw.Generation} {readyFor:F1}s after ready, {Acked(gw.Generation)} acked and " +
                        $"{Delivered(gw)} deliveries in this generation");
                }
                Say($"SIGKILL {kills[^1]}");
                gw = StartGateway();
                if (!startupKillAt.Contains(k + 1) && !await WaitReadyAsync(gw).ConfigureAwait(false))
                    return Fail(gw, "gateway did not come back after a kill");
            }
            if (!gw.Ready && !await WaitReadyAsync(gw).ConfigureAwait(false)) return Fail(gw, "last gateway did not start");
            await Task.Delay(TimeSpan.FromSeconds(o.Tail)).ConfigureAwait(false);

            _stopSubmitting = true;
            await Task.WhenAll(submitters).ConfigureAwait(false);
            rateCts.Cancel();
            await rateTask.ConfigureAwait(false);
            Say($"submission stopped: {_subs.Count} submitted, {Count(Outcome.Acked)} acked");

            // Drain: every acked (id, recipient) delivered, then no new delivery for 3 s (late duplicates, unknowns).
            var drainStart = _clock.Elapsed;
            var drained = false;
            var lastCount = -1;
            var quietSince = _clock.Elapsed;
            while ((_clock.Elapsed - drainStart).TotalSeconds < o.DrainTimeout)
            {
                Ingest();
                if (_receiverProcessed != lastCount) { lastCount = _receiverProcessed; quietSince = _clock.Elapsed; }
                if (MissingAcked() == 0 && (_clock.Elapsed - quietSince).TotalSeconds >= 3) { drained = true; break; }
                if (gw.Process.HasExited) return Fail(gw, "last gateway exited while draining");
                await Task.Delay(250).ConfigureAwait(false);
            }
            Say(drained
                ? $"drained in {(_clock.Elapsed - drainStart).TotalSeconds:F1}s"
                : $"drain timeout after {o.DrainTimeout}s: {MissingAcked()} acked recipients still undelivered");

            var stopped = await StopGracefullyAsync(gw).ConfigureAwait(false);
            Say(stopped ? $"gen {gw.Generation} stopped gracefully (SIGTERM, exit {gw.Process.ExitCode})" : $"gen {gw.Generation} did not stop within 60s after SIGTERM (killed)");

            // Spool check: start once more on the same data dir and read what the spool recovers.
            var segmentsBefore = SegmentFiles();
            var verify = StartGateway();
            var verifyReady = await WaitReadyAsync(verify).ConfigureAwait(false);
            var outstanding = SpoolOpenCounts(verify.LogOffset);
            var recoveredOutstanding = outstanding.LastOrDefault(-1);
            if (recoveredOutstanding > 0)
            {
                // Let it deliver what it recovered, so the figures below include those (duplicate) deliveries.
                var until = _clock.Elapsed + TimeSpan.FromSeconds(15);
                var before = _receiverProcessed;
                while (_clock.Elapsed < until) { Ingest(); await Task.Delay(250).ConfigureAwait(false); }
                Say($"verification start recovered {recoveredOutstanding} messages; {_receiverProcessed - before} deliveries followed");
            }
            var verifyStopped = await StopGracefullyAsync(verify).ConfigureAwait(false);
            Ingest();

            return Report(kills, drained, stopped && verifyStopped && verifyReady, recoveredOutstanding, segmentsBefore);
        }

        // ---- gateway process -------------------------------------------------------------------------------------

        private sealed class GatewayProcess(int generation, Process process, long logOffset, StreamWriter output,
            TimeSpan spawnedAt, int receiverCountAtSpawn)
        {
            public TimeSpan SpawnedAt { get; } = spawnedAt;
            public int ReceiverCountAtSpawn { get; } = receiverCountAtSpawn;
            public TimeSpan ReadyAt { get; set; }
            public int Generation { get; } = generation;
            public Process Process { get; } = process;
            public long LogOffset { get; } = logOffset;
            public StreamWriter Output { get; } = output;
            public bool Ready { get; set; }
        }

        private GatewayProcess StartGateway()
        {
            var gen = Interlocked.Increment(ref _generation);
            var psi = new ProcessStartInfo("dotnet")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = o.WorkDir,
            };
            psi.ArgumentList.Add(o.GatewayDll);
            psi.ArgumentList.Add("serve");
            psi.ArgumentList.Add("--config");
            psi.ArgumentList.Add(_confPath);
            var offset = File.Exists(_jsonLog) ? new FileInfo(_jsonLog).Length : 0;
            var output = new StreamWriter(Path.Combine(o.WorkDir, $"gateway-{gen}.out")) { AutoFlush = true };
            var p = new Process { StartInfo = psi };
            p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.WriteLine(e.Data); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.WriteLine("ERR " + e.Data); };
            p.Start();
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            Say($"gen {gen}: started pid {p.Id}");
            return new GatewayProcess(gen, p, offset, output, _clock.Elapsed, _receiver.Messages.Count);
        }

        private async Task<bool> WaitReadyAsync(GatewayProcess gw)
        {
            var until = _clock.Elapsed + TimeSpan.FromSeconds(60);
            while (_clock.Elapsed < until)
            {
                if (gw.Process.HasExited) return false;
                if (CanConnect())
                {
                    gw.Ready = true;
                    gw.ReadyAt = _clock.Elapsed;
                    _lastStartup = gw.ReadyAt - gw.SpawnedAt;
                    Say($"gen {gw.Generation}: listening after {_lastStartup.TotalSeconds:F1}s");
                    return true;
                }
                await Task.Delay(100).ConfigureAwait(false);
            }
            return false;
        }

        private bool CanConnect()
        {
            try
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(IPAddress.Loopback, _port);
                return true;
            }
            catch (SocketException) { return false; }
        }

        private static void Kill(GatewayProcess gw)
        {
            if (!gw.Process.HasExited) gw.Process.Kill(); // SIGKILL on Unix
            gw.Process.WaitForExit();
        }

        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        private static extern int SysKill(int pid, int sig);

        private async Task<bool> StopGracefullyAsync(GatewayProcess gw)
        {
            if (gw.Process.HasExited) return false;
            SysKill(gw.Process.Id, 15);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try { await gw.Process.WaitForExitAsync(cts.Token).ConfigureAwait(false); return gw.Process.ExitCode == 0; }
            catch (OperationCanceledException) { Kill(gw); return false; }
        }

        private int Fail(GatewayProcess gw, string why)
        {
            Say($"FAILED: {why} (gen {gw.Generation}; output in {o.WorkDir}/gateway-{gw.Generation}.out)");
            try { Kill(gw); } catch (InvalidOperationException) { }
            _stopSubmitting = true;
            return 1;
        }

        /// <summary>"messages" of each spool_open event written to the JSON log after <paramref name="offset"/>.</summary>
        private List<int> SpoolOpenCounts(long offset)
        {
            var result = new List<int>();
            if (!File.Exists(_jsonLog)) return result;
            using var fs = new FileStream(_jsonLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            fs.Seek(offset, SeekOrigin.Begin);
            using var reader = new StreamReader(fs);
            while (reader.ReadLine() is { } line)
            {
                if (!line.Contains("\"spool_open\"", StringComparison.Ordinal)) continue;
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("messages", out var m)) result.Add(m.GetInt32());
            }
            return result;
        }

        private string[] SegmentFiles()
        {
            var dir = Path.Combine(_dataDir, "spool");
            return Directory.Exists(dir) ? Directory.GetFiles(dir).Select(f => Path.GetFileName(f)).Order().ToArray() : [];
        }

        // ---- submitters --------------------------------------------------------------------------------------------

        private async Task RefillAsync(CancellationToken ct)
        {
            // Token bucket: release rate/20 permits every 50 ms (no accumulation beyond one second's worth).
            var per = Math.Max(1, (int)Math.Round(o.Rate / 20));
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    if (_rate.CurrentCount < o.Rate) _rate.Release(per);
                    await Task.Delay(50, ct).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) { }
            _rate.Release(o.Submitters * 2);
        }

        private async Task SubmitLoopAsync(int worker)
        {
            var rng = new Random(o.Seed * 31 + worker);
            using var client = new SmtpClient { Timeout = 15_000 };
            while (!_stopSubmitting)
            {
                if (!client.IsConnected)
                {
                    try { await client.ConnectAsync("127.0.0.1", _port, SecureSocketOptions.None).ConfigureAwait(false); }
                    catch (Exception)
                    {
                        await Task.Delay(100).ConfigureAwait(false);
                        continue;
                    }
                }
                if (o.Rate > 0) await _rate.WaitAsync().ConfigureAwait(false);
                if (_stopSubmitting) break;
                var id = Interlocked.Increment(ref _nextId);
                var sub = new Submission(id, PickRecipients(rng), _generation);
                _subs[id] = sub;
                var msg = new MimeMessage();
                msg.From.Add(MailboxAddress.Parse(Sender));
                foreach (var r in sub.Recipients) msg.To.Add(MailboxAddress.Parse(r));
                msg.Subject = $"crash test {id}";
                msg.Headers.Add(IdHeader, id.ToString(CultureInfo.InvariantCulture));
                msg.Body = new TextPart("plain") { Text = $"message {id}\n" + new string('x', rng.Next(100, 2000)) + "\n" };
                try
                {
                    await client.SendAsync(msg, MailboxAddress.Parse(Sender), msg.To.Mailboxes).ConfigureAwait(false);
                    sub.Outcome = Outcome.Acked; // the 250 after the final "."
                }
                catch (SmtpCommandException ex)
                {
                    // An explicit 4xx/5xx reply: not accepted (the gateway must not deliver it).
                    sub.Detail = $"{(int)ex.StatusCode} {ex.Message}";
                    sub.Outcome = Outcome.Rejected;
                }
                catch (Exception ex)
                {
                    // The session died somewhere in the transaction: we cannot know whether the gateway took it.
                    sub.Detail = ex.GetType().Name;
                    sub.Outcome = Outcome.Unknown;
                    try { await client.DisconnectAsync(false).ConfigureAwait(false); } catch (Exception) { }
                }
            }
            try { if (client.IsConnected) await client.DisconnectAsync(true).ConfigureAwait(false); } catch (Exception) { }
        }

        private static string[] PickRecipients(Random rng)
        {
            // 60 % single recipient, else 2-4 recipients, often across domains (split into several destinations).
            var n = rng.NextDouble() < 0.6 ? 1 : rng.Next(2, 5);
            var set = new HashSet<string>();
            while (set.Count < n) set.Add($"user{rng.Next(1, 20)}@{Domains[rng.Next(Domains.Length)]}");
            return set.ToArray();
        }

        // ---- receiver side -------------------------------------------------------------------------------------------

        private void Ingest()
        {
            var all = _receiver.Messages;
            for (; _receiverProcessed < all.Count; _receiverProcessed++)
            {
                var m = all[_receiverProcessed];
                var id = HeaderId(m.Data);
                if (id is null)
                {
                    _foreign.Add($"from <{m.MailFrom}> to {string.Join(",", m.Recipients.Select(r => r.Address))}");
                    continue;
                }
                foreach (var r in m.Recipients)
                {
                    var key = (id.Value, r.Address.ToLowerInvariant());
                    _deliveries[key] = _deliveries.GetValueOrDefault(key) + 1;
                }
            }
        }

        /// <summary>The X-Crash-Id of the top-level header block (not of a header part inside a DSN).</summary>
        private static long? HeaderId(byte[] data)
        {
            var text = Encoding.ASCII.GetString(data);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var headers = end < 0 ? text : text[..end];
            foreach (var line in headers.Split("\r\n"))
            {
                if (line.StartsWith(IdHeader + ":", StringComparison.OrdinalIgnoreCase)
                    && long.TryParse(line[(IdHeader.Length + 1)..].Trim(), CultureInfo.InvariantCulture, out var id))
                    return id;
            }
            return null;
        }

        /// <summary>Receiver transactions since this gateway process was spawned (it is the only one delivering).</summary>
        private int Delivered(GatewayProcess gw) => _receiver.Messages.Count - gw.ReceiverCountAtSpawn;

        private int Count(Outcome outcome) => _subs.Values.Count(s => s.Outcome == outcome);
        private int Acked(int generation) => _subs.Values.Count(s => s.Generation == generation && s.Outcome == Outcome.Acked);

        private int MissingAcked() =>
            _subs.Values.Where(s => s.Outcome == Outcome.Acked)
                .Sum(s => s.Recipients.Count(r => !_deliveries.ContainsKey((s.Id, r.ToLowerInvariant()))));

        private int Delivered(Submission s, string r) => _deliveries.GetValueOrDefault((s.Id, r.ToLowerInvariant()));

        // ---- report --------------------------------------------------------------------------------------------------

        private int Report(List<string> kills, bool drained, bool cleanStops, int spoolOutstanding, string[] segments)
        {
            var subs = _subs.Values.OrderBy(s => s.Id).ToArray();
            var acked = subs.Where(s => s.Outcome == Outcome.Acked).ToArray();
            var unknown = subs.Where(s => s.Outcome == Outcome.Unknown).ToArray();
            var rejected = subs.Where(s => s.Outcome == Outcome.Rejected).ToArray();
            var pending = subs.Where(s => s.Outcome == Outcome.Pending).ToArray();

            var lost = acked.SelectMany(s => s.Recipients.Where(r => Delivered(s, r) == 0).Select(r => (s, r))).ToArray();
            var lostMessages = lost.Select(x => x.s.Id).Distinct().Count();
            var dupPairs = subs.SelectMany(s => s.Recipients.Where(r => Delivered(s, r) > 1).Select(r => (s, r, n: Delivered(s, r)))).ToArray();
            var dupMessages = dupPairs.Select(x => x.s.Id).Distinct().Count();
            var extraCopies = dupPairs.Sum(x => x.n - 1);
            var unknownDelivered = unknown.Where(s => s.Recipients.Any(r => Delivered(s, r) > 0)).ToArray();
            // A message is spooled with all its recipients at once: an unknown one delivered to some but not all of
            // them was accepted and then partly lost.
            var unknownPartial = unknownDelivered.Where(s => s.Recipients.Any(r => Delivered(s, r) == 0)).ToArray();
            var rejectedDelivered = rejected.Where(s => s.Recipients.Any(r => Delivered(s, r) > 0)).ToArray();
            var submittedIds = new HashSet<long>(subs.Select(s => s.Id));
            var strangers = _deliveries.Keys.Where(k => !submittedIds.Contains(k.Id)
                || !_subs[k.Id].Recipients.Any(r => r.Equals(k.Rcpt, StringComparison.OrdinalIgnoreCase))).ToArray();
            var ackedPairs = acked.Sum(s => s.Recipients.Length);
            var deliveredAckedPairs = ackedPairs - lost.Length;

            Console.WriteLine();
            Console.WriteLine("==== crash test report ====");
            Console.WriteLine($"seed {o.Seed}; {kills.Count} SIGKILLs; {_generation} gateway processes (incl. the verification start)");
            foreach (var k in kills) Console.WriteLine($"  kill {k}");
            Console.WriteLine($"submitted                {subs.Length} messages ({subs.Sum(s => s.Recipients.Length)} recipients)");
            Console.WriteLine($"acked (250)              {acked.Length} messages ({ackedPairs} recipients)");
            Console.WriteLine($"rejected (4xx/5xx)       {rejected.Length}{Sample(rejected.Select(s => $"{s.Id}: {s.Detail}"))}");
            Console.WriteLine($"unknown (session died)   {unknown.Length}");
            if (pending.Length > 0) Console.WriteLine($"pending (?)              {pending.Length}");
            Console.WriteLine($"receiver transactions    {_receiverProcessed} ({_deliveries.Values.Sum()} recipient deliveries)");
            Console.WriteLine($"delivered (acked)        {deliveredAckedPairs} of {ackedPairs} recipients");
            Console.WriteLine($"LOST (acked, never delivered)  {lost.Length} recipients in {lostMessages} messages" +
                Sample(lost.Select(x => $"id {x.s.Id} {x.r} (gen {x.s.Generation})")));
            Console.WriteLine($"duplicates               {dupPairs.Length} recipients in {dupMessages} messages, {extraCopies} extra copies" +
                Sample(dupPairs.Select(x => $"id {x.s.Id} {x.r} ×{x.n} ({x.s.Outcome}, gen {x.s.Generation})")));
            Console.WriteLine($"unknown but delivered    {unknownDelivered.Length} of {unknown.Length}" +
                (unknownPartial.Length > 0 ? $" — {unknownPartial.Length} only partly delivered (LOSS)" + Sample(unknownPartial.Select(s => $"id {s.Id}")) : ""));
            if (rejectedDelivered.Length > 0)
                Console.WriteLine($"REJECTED BUT DELIVERED   {rejectedDelivered.Length}{Sample(rejectedDelivered.Select(s => $"id {s.Id}: {s.Detail}"))}");
            if (strangers.Length > 0) Console.WriteLine($"UNEXPECTED deliveries    {strangers.Length}{Sample(strangers.Select(k => $"{k.Id} {k.Rcpt}"))}");
            if (_foreign.Count > 0) Console.WriteLine($"messages without {IdHeader} (DSNs?) {_foreign.Count}{Sample(_foreign)}");
            Console.WriteLine($"drained                  {(drained ? "yes" : "NO (timeout)")}; graceful stops {(cleanStops ? "ok" : "NOT clean")}");
            Console.WriteLine($"spool at the end         {(spoolOutstanding < 0 ? "unknown (no spool_open line)" : $"{spoolOutstanding} messages outstanding")} " +
                $"(files: {string.Join(" ", segments)})");

            var failures = new List<string>();
            if (lost.Length > 0) failures.Add($"{lost.Length} acked recipients lost");
            if (unknownPartial.Length > 0) failures.Add($"{unknownPartial.Length} unknown messages partly delivered");
            if (rejectedDelivered.Length > 0) failures.Add($"{rejectedDelivered.Length} rejected messages delivered");
            if (strangers.Length > 0) failures.Add($"{strangers.Length} unexpected deliveries");
            if (_foreign.Count > 0) failures.Add($"{_foreign.Count} messages without {IdHeader} (bounces?)");
            if (spoolOutstanding != 0) failures.Add($"spool not empty at the end ({spoolOutstanding})");
            if (acked.Length == 0) failures.Add("nothing was acked");
            if (!cleanStops) failures.Add("a graceful stop failed");
            Console.WriteLine(failures.Count == 0
                ? $"RESULT: PASS — 0 lost of {ackedPairs} acked recipients; {extraCopies} duplicate copies"
                : $"RESULT: FAIL — {string.Join("; ", failures)}");
            return failures.Count == 0 ? 0 : 1;
        }

        private static string Sample(IEnumerable<string> items)
        {
            var list = items.Take(6).ToList();
            return list.Count == 0 ? "" : "\n      e.g. " + string.Join("\n           ", list);
        }
    }
}
