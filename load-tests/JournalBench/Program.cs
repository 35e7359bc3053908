using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Microsoft.Data.Sqlite;
using MtaSts.Actors.Engine.Destination;

// Journal benchmark: what one persisted event per message costs on the embedded SQLite journal, against the engine's
// batching (PersistAll of one transaction's deferrals) — the reason first-attempt successes persist nothing.
// Usage: dotnet run -c Release --project load-tests/JournalBench -- [--events 20000] [--actors 50] [--batch 50]
var events = Arg("--events", 20000);
var actors = Arg("--actors", 50);
var batch = Arg("--batch", 50);
var dir = Path.Combine(Path.GetTempPath(), "mtasts-journal-bench-" + Guid.NewGuid().ToString("N"));
Directory.CreateDirectory(dir);
try
{
    Console.WriteLine($"journal benchmark: SQLite (WAL) via Akka.Persistence.Sql, {events} events over {actors} persistent actors, engine serializer");
    Console.WriteLine($"machine: {Environment.ProcessorCount} cores");
    var single = await RunAsync("Persist per event", dir, "a", events, actors, 1);
    var batched = await RunAsync($"PersistAll x{batch}", dir, "b", events, actors, batch);
    Console.WriteLine();
    Console.WriteLine("| mode | events/s | elapsed |");
    Console.WriteLine("|---|---:|---:|");
    foreach (var r in new[] { single, batched })
        Console.WriteLine($"| {r.Mode} | {r.Rate:N0} | {r.Elapsed.TotalSeconds:N1} s |");
    Console.WriteLine($"\nbatching speed-up: {batched.Rate / single.Rate:N1}x");
}
finally
{
    try { Directory.Delete(dir, true); } catch (IOException) { }
}
return 0;

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture) : fallback;
}

static async Task<(string Mode, double Rate, TimeSpan Elapsed)> RunAsync(string mode, string dir, string tag, int events, int actors, int batch)
{
    var db = Path.Combine(dir, $"journal-{tag}.db");
    using (var c = new SqliteConnection($"Data Source={db}"))
    {
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL;";
        cmd.ExecuteNonQuery();
    }
    var akka = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "hocon", "akka.conf"));
    var config = ConfigurationFactory.ParseString(akka + $$"""

        akka.actor.provider = local
        akka.persistence.journal.sql.connection-string = "Data Source={{db.Replace("\\", "/")}};Default Timeout=60"
        akka.persistence.snapshot-store.sql.connection-string = "Data Source={{db.Replace("\\", "/")}}.snap;Default Timeout=60"
        """);
    using var system = ActorSystem.Create("bench", config);
    var perActor = events / actors;
    var done = new TaskCompletionSource();
    var remaining = actors;
    Action finished = () =>
    {
        if (Interlocked.Decrement(ref remaining) == 0) done.TrySetResult();
    };
    var refs = Enumerable.Range(0, actors)
        .Select(i => system.ActorOf(Props.Create(() => new Writer($"bench-{tag}-{i}", perActor, batch, finished)))).ToArray();
    // Warm-up: table creation and connection pool.
    await Task.Delay(2000);
    var sw = Stopwatch.StartNew();
    foreach (var r in refs) r.Tell("go");
    await done.Task.WaitAsync(TimeSpan.FromMinutes(10));
    sw.Stop();
    var total = perActor * actors;
    Console.WriteLine($"  {mode}: {total} events in {sw.Elapsed.TotalSeconds:N1} s = {total / sw.Elapsed.TotalSeconds:N0} events/s");
    await system.Terminate();
    return (mode, total / sw.Elapsed.TotalSeconds, sw.Elapsed);
}

sealed class Writer(string id, int count, int batch, Action finished) : UntypedPersistentActor
{
    private int _written;
    public override string PersistenceId { get; } = id;

    protected override void OnRecover(object message) { }

    protected override void OnCommand(object message)
    {
        if (message is not "go" and not "next") return;
        if (_written >= count) { finished(); return; }
        var n = Math.Min(batch, count - _written);
        var evts = Enumerable.Range(0, n).Select(i => new RecipientsDeferred(_written + i, [0, 1], 1, DateTimeOffset.UtcNow, "4.2.2 - mailbox full")).ToArray();
        var left = n;
        // Persist per event = one journal round trip (and stash) per event, as a per-message actor would do.
        PersistAll(evts, _ =>
        {
            _written++;
            if (--left == 0) Self.Tell("next");
        });
    }
}
