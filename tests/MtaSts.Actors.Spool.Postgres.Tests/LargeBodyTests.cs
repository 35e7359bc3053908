namespace MtaSts.Actors.Spool.Postgres.Tests;

/// <summary>A large spilled body is streamed to PostgreSQL, never loaded into memory by the append, and read back
/// into exactly one array.</summary>
[Collection(nameof(LargeBodyTests))] // allocation counts: nothing else of this assembly should run alongside
public sealed class LargeBodyTests(PostgresFixture db) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task A_32MB_spilled_body_is_streamed_on_append_and_read_into_one_array()
    {
        const int size = 32 * 1024 * 1024;
        var spill = Directory.CreateTempSubdirectory("pgspool-spill-").FullName;
        try
        {
            await using var spool = await PostgresSpool.OpenAsync(db.Options(db.NewPrefix(), spill));
            var chunk = Messages.Body(1024 * 1024, 3);
            using var writer = new MessageBodyWriter(spool.SpillDirectory, memoryLimit: 256 * 1024);
            for (int i = 0; i < size / chunk.Length; i++) await writer.WriteAsync(chunk);
            using var body = await writer.CompleteAsync();
            Assert.True(body.IsSpilled);
            await spool.AppendAsync(1, Messages.Envelope("small@warmup.test"), Messages.Body(10, 1)); // connections, JIT

            long before = GC.GetTotalAllocatedBytes(precise: true);
            await spool.AppendAsync(2, Messages.Envelope("big@x.test"), body);
            long appendAllocated = GC.GetTotalAllocatedBytes(precise: true) - before;
            Assert.True(appendAllocated < size / 4, $"append allocated {appendAllocated:N0} bytes for a {size:N0}-byte spilled body");

            before = GC.GetTotalAllocatedBytes(precise: true);
            var read = await spool.ReadBodyAsync(2);
            long readAllocated = GC.GetTotalAllocatedBytes(precise: true) - before;
            Assert.Equal(size, read.Length);
            Assert.True(readAllocated < size + size / 4, $"read allocated {readAllocated:N0} bytes for a {size:N0}-byte body");
            for (int i = 0; i < size; i += chunk.Length) Assert.True(read.Span.Slice(i, chunk.Length).SequenceEqual(chunk), $"bytes differ at {i}");
        }
        finally
        {
            Directory.Delete(spill, true);
        }
    }
}

/// <summary>Its own class: a collection definition on a class with <c>IClassFixture</c> made xUnit create a second
/// fixture (a second PostgreSQL) that was never disposed.</summary>
[CollectionDefinition(nameof(LargeBodyTests), DisableParallelization = true)]
public sealed class LargeBodyCollection;
