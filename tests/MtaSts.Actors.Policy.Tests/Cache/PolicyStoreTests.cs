using Microsoft.Data.Sqlite;
using MtaSts.Actors.Policy.Cache;
using MtaSts.Actors.Policy.Parsing;

namespace MtaSts.Actors.Policy.Tests.Cache;

public sealed class PolicyStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("policy-store-").FullName;
    private string DbPath => Path.Combine(_dir, "sub", "mtasts.db");
    private static readonly DateTimeOffset T0 = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    private const string Text = "version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 86400\n";

    private static CachedPolicy Entry(string domain = "example.test", string id = "1", string text = Text) =>
        new(domain, id, text, StsPolicyParser.Parse(text).Value!, T0, T0.AddDays(1), T0);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, true); } catch (Exception) { }
    }

    [Fact]
    public void Entries_survive_a_restart_with_all_fields()
    {
        using (var store = PolicyStore.Open(DbPath))
        {
            store.Put(Entry());
            store.Put(Entry("Other.Test.", "abc"));
            Assert.Equal(2, store.Count);
        }
        using var reopened = PolicyStore.Open(DbPath);
        Assert.Empty(reopened.LoadErrors);
        var e = reopened.Get("EXAMPLE.test")!;
        Assert.Equal("example.test", e.Domain);
        Assert.Equal("1", e.PolicyId);
        Assert.Equal(Text, e.PolicyText);
        Assert.Equal(StsMode.Enforce, e.Policy.Mode);
        Assert.Equal("*.example.test", Assert.Single(e.Policy.Mx).Pattern);
        Assert.Equal(T0, e.FetchedAt);
        Assert.Equal(T0.AddDays(1), e.ExpiresAt);
        Assert.Equal(T0, e.LastChecked);
        Assert.Equal("abc", reopened.Get("other.test")!.PolicyId);
    }

    [Fact]
    public void Put_replaces_and_remove_deletes_on_disk_too()
    {
        using (var store = PolicyStore.Open(DbPath))
        {
            store.Put(Entry(id: "1"));
            store.Put(Entry(id: "2", text: "version: STSv1\nmode: none\nmax_age: 60\n"));
            store.Put(Entry("gone.test"));
            Assert.True(store.Remove("gone.test"));
            Assert.False(store.Remove("never.test"));
        }
        using var reopened = PolicyStore.Open(DbPath);
        Assert.Equal(1, reopened.Count);
        Assert.Equal("2", reopened.Get("example.test")!.PolicyId);
        Assert.Equal(StsMode.None, reopened.Get("example.test")!.Policy.Mode);
        Assert.Null(reopened.Get("gone.test"));
    }

    [Fact]
    public void Uses_wal_and_one_table()
    {
        using (var store = PolicyStore.Open(DbPath)) store.Put(Entry());
        using var conn = new SqliteConnection($"Data Source={DbPath};Pooling=false");
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode;";
        Assert.Equal("wal", (string)cmd.ExecuteScalar()!);
        cmd.CommandText = "SELECT group_concat(name) FROM sqlite_master WHERE type = 'table';";
        Assert.Equal("mta_sts_policy", (string)cmd.ExecuteScalar()!);
    }

    [Fact]
    public void Touch_updates_memory_always_and_disk_at_most_hourly()
    {
        using (var store = PolicyStore.Open(DbPath))
        {
            store.Put(Entry());
            store.Touch("example.test", T0.AddMinutes(10));
            Assert.Equal(T0.AddMinutes(10), store.Get("example.test")!.LastChecked);
        }
        using (var store = PolicyStore.Open(DbPath))
        {
            Assert.Equal(T0, store.Get("example.test")!.LastChecked); // 10 minutes: memory only
            store.Touch("example.test", T0.AddHours(2));
            store.Touch("example.test", T0.AddHours(1)); // never goes back
            Assert.Equal(T0.AddHours(2), store.Get("example.test")!.LastChecked);
        }
        using var last = PolicyStore.Open(DbPath);
        Assert.Equal(T0.AddHours(2), last.Get("example.test")!.LastChecked);
    }

    [Fact]
    public void Purge_drops_only_long_expired_unused_entries()
    {
        using var store = PolicyStore.Open(DbPath);
        store.Put(Entry("old.test"));
        store.Put(Entry("used.test"));
        store.Touch("used.test", T0.AddDays(40));
        store.Put(Entry("fresh.test") with { ExpiresAt = T0.AddDays(100) });
        Assert.Equal(1, store.Purge(T0.AddDays(31)));
        Assert.Null(store.Get("old.test"));
        Assert.NotNull(store.Get("used.test"));
        Assert.NotNull(store.Get("fresh.test"));
    }

    [Fact]
    public void Stored_text_that_no_longer_parses_is_dropped_at_load()
    {
        using (var store = PolicyStore.Open(DbPath)) store.Put(Entry());
        using (var conn = new SqliteConnection($"Data Source={DbPath};Pooling=false"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "UPDATE mta_sts_policy SET policy_text = 'garbage' WHERE domain = 'example.test';";
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }
        using (var reopened = PolicyStore.Open(DbPath))
        {
            Assert.Null(reopened.Get("example.test"));
            Assert.Contains(reopened.LoadErrors, e => e.StartsWith("example.test:"));
        }
        using var again = PolicyStore.Open(DbPath);
        Assert.Equal(0, again.Count);
        Assert.Empty(again.LoadErrors);
    }

    [Fact]
    public void In_memory_store_works_without_a_file()
    {
        using var store = PolicyStore.InMemory();
        store.Put(Entry());
        store.Touch("example.test", T0.AddHours(3));
        Assert.Equal(T0.AddHours(3), store.Get("example.test")!.LastChecked);
        Assert.Null(store.Path);
        Assert.Single(store.Snapshot());
    }
}
