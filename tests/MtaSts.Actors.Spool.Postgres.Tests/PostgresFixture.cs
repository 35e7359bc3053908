using MtaSts.Actors.TestInfra.Postgres;

namespace MtaSts.Actors.Spool.Postgres.Tests;

/// <summary>One private PostgreSQL per test class; each test gets its own table prefix (its own spool).</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private int _next;

    public PostgresInstance Pg { get; private set; } = null!;
    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Pg = await PostgresInstance.StartAsync();
        ConnectionString = await Pg.CreateDatabaseAsync("spool");
    }

    public async Task DisposeAsync() => await Pg.DisposeAsync();

    public string NewPrefix() => $"t{Interlocked.Increment(ref _next)}_spool";

    public PostgresSpoolOptions Options(string prefix, string? spill = null) => new(ConnectionString)
    {
        TablePrefix = prefix,
        SpillDirectory = spill,
        CommandTimeout = TimeSpan.FromSeconds(20),
    };

    public Task<object?> ScalarAsync(string sql) => Pg.ScalarAsync("spool", sql);
}
