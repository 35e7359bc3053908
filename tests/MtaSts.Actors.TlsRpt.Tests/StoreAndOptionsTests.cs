using MtaSts.Actors.Logging;
using MtaSts.Actors.TestInfra.Config;
using MtaSts.Actors.TlsRpt;

namespace MtaSts.Actors.TlsRpt.Tests;

public sealed class StoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tlsrpt-store-" + Guid.NewGuid().ToString("N"));
    private string Db => Path.Combine(_dir, "tlsrpt.db");

    public StoreTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static readonly DateTimeOffset Noon = new(2024, 5, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TlsRptPolicy Sts = new("sts", ["version: STSv1", "mode: enforce", "mx: mx.d.test", "max_age: 1"], ["mx.d.test"]);

    private static TlsRptSession Ok(DateTimeOffset at) => new("d.test", Sts, null, "127.0.0.1", "mx.d.test", "127.0.0.2", at);
    private static TlsRptSession Bad(DateTimeOffset at) => new("d.test", Sts, "certificate-expired", "127.0.0.1", "mx.d.test", "127.0.0.2", at);

    [Fact]
    public void Counts_survive_a_restart_and_add_up()
    {
        using (var store = TlsRptStore.Open(Db))
        using (var rec = new TlsRptRecorder(store, "node1", MailLog.Null, TimeSpan.Zero))
        {
            for (var i = 0; i < 7; i++) rec.Record(Ok(Noon));
            for (var i = 0; i < 2; i++) rec.Record(Bad(Noon));
            rec.Record(Ok(Noon.AddDays(1))); // another day
            rec.Flush();
            rec.Record(Ok(Noon)); // after a flush: written by Dispose (graceful stop)
        }
        using (var store = TlsRptStore.Open(Db))
        {
            var day = DateOnly.FromDateTime(Noon.UtcDateTime);
            Assert.Equal(["d.test"], store.Domains(day));
            var counts = store.Counts("d.test", day);
            Assert.Equal(8, counts.Single(c => c.ResultType is null).Sessions);
            var bad = counts.Single(c => c.ResultType is not null);
            Assert.Equal(2, bad.Sessions);
            Assert.Equal("mx.d.test", bad.ReceivingMx);
            Assert.Equal(Sts, bad.Policy);
            Assert.Equal(1, store.Counts("d.test", day.AddDays(1)).Single().Sessions);
        }
    }

    [Fact]
    public void Rows_of_several_nodes_sum_up()
    {
        using var store = TlsRptStore.Open(Db);
        store.Add("node1", [new(Ok(Noon), 3), new(Bad(Noon), 1)]);
        store.Add("node2", [new(Ok(Noon), 4)]);
        store.Add("node1", [new(Ok(Noon), 1)]);
        var counts = store.Counts("d.test", DateOnly.FromDateTime(Noon.UtcDateTime));
        Assert.Equal(8, counts.Single(c => c.ResultType is null).Sessions);
        Assert.Equal(1, counts.Single(c => c.ResultType is not null).Sessions);
    }

    [Fact]
    public void Concurrent_recording_loses_nothing()
    {
        using var store = TlsRptStore.Open(Db);
        using (var rec = new TlsRptRecorder(store, "n", MailLog.Null, TimeSpan.FromMilliseconds(100)))
            Parallel.For(0, 20_000, i => rec.Record(i % 10 == 0 ? Bad(Noon) : Ok(Noon)));
        var counts = store.Counts("d.test", DateOnly.FromDateTime(Noon.UtcDateTime));
        Assert.Equal(18_000, counts.Single(c => c.ResultType is null).Sessions);
        Assert.Equal(2_000, counts.Single(c => c.ResultType is not null).Sessions);
    }
}

public sealed class OptionsTests
{
    private static (TlsRptOptions O, List<string> Errors) Read(params (string K, string V)[] kv) =>
        DictionaryConfigSource.Read("mtasts.tls-rpt", TlsRptOptions.Read, kv.ToDictionary(x => "mtasts.tls-rpt." + x.K, x => x.V));

    [Fact]
    public void Defaults_are_off_and_valid() => Assert.Empty(Read().Errors);

    [Fact]
    public void Enabled_requires_organization_and_contact()
    {
        var (_, errors) = Read(("enabled", "true"));
        Assert.Contains(errors, e => e.StartsWith("mtasts.tls-rpt.organization-name is required"));
        Assert.Contains(errors, e => e.StartsWith("mtasts.tls-rpt.contact-info is required"));
    }

    [Fact]
    public void Bad_values_name_the_key_and_the_range()
    {
        var (_, errors) = Read(("enabled", "maybe"), ("send-hour-utc", "24"), ("flush-interval", "10x"), ("max-attempts", "0"),
            ("from-address", "nobody"), ("submitter", "not a domain"));
        Assert.Contains("mtasts.tls-rpt.enabled = \"maybe\": expected true or false", errors);
        Assert.Contains("mtasts.tls-rpt.send-hour-utc = \"24\": expected an integer 0..23", errors);
        Assert.Contains(errors, e => e.StartsWith("mtasts.tls-rpt.flush-interval = \"10x\": expected a duration 100ms..5m"));
        Assert.Contains("mtasts.tls-rpt.max-attempts = \"0\": expected an integer 1..20", errors);
        Assert.Contains(errors, e => e.StartsWith("mtasts.tls-rpt.from-address = \"nobody\""));
        Assert.Contains(errors, e => e.StartsWith("mtasts.tls-rpt.submitter = \"not a domain\""));
    }

    [Fact]
    public void Good_values()
    {
        var (o, errors) = Read(("enabled", "true"), ("organization-name", "Example"), ("contact-info", "mailto:a@b.example"),
            ("send-hour-utc", "3"), ("flush-interval", "2s"), ("retry-interval", "500ms"));
        Assert.Empty(errors);
        Assert.True(o.Enabled);
        Assert.Equal(3, o.SendHourUtc);
        Assert.Equal(TimeSpan.FromSeconds(2), o.FlushInterval);
        Assert.Equal(TimeSpan.FromMilliseconds(500), o.RetryInterval);
    }
}
