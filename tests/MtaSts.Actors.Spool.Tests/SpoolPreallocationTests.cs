using System.Collections.Concurrent;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Spool.Tests;

/// <summary>Issue 15: the active segment is zero-filled ahead of the data, so a group commit overwrites allocated
/// space and its fsync needs no journal commit. The zeros are never mistaken for records or for damage.</summary>
public sealed class SpoolPreallocationTests : SpoolTestBase
{
    private const int Header = 16; // segment header: magic + format version
    private readonly ConcurrentQueue<string> _events = new();

    private SegmentSpool OpenPreallocating(long segmentSize, long preallocate)
    {
        var log = new MailLog(null, minimum: MailLogLevel.Debug);
        log.Written += e => _events.Enqueue(e.Event);
        return new SegmentSpool(new SegmentSpoolOptions(Dir, SegmentSize: segmentSize, PreallocateBytes: preallocate), log);
    }

    [Fact]
    public async Task Appends_land_in_space_zero_filled_ahead_of_them()
    {
        await using var spool = OpenPreallocating(segmentSize: 1 << 20, preallocate: 64 * 1024);
        await spool.AppendAsync(1, Env(), Body(1));
        // The first append waited for the first zero-fill (it covered the append's offset); no second one is due yet.
        Assert.Equal(Header + 64 * 1024, new FileInfo(SegmentFiles().Single()).Length);
        Assert.Equal(Body(1), (await spool.ReadBodyAsync(1)).ToArray());
    }

    [Fact]
    public async Task Preallocated_space_never_grows_a_segment_past_its_size()
    {
        await using var spool = OpenPreallocating(segmentSize: 16 * 1024, preallocate: 64 * 1024);
        await spool.AppendAsync(1, Env(), Body(1));
        Assert.Equal(16 * 1024, new FileInfo(SegmentFiles().Single()).Length);
    }

    [Fact]
    public async Task Zeros_left_by_a_crash_are_released_quietly_and_every_message_is_recovered()
    {
        var crashed = OpenPreallocating(segmentSize: 1 << 20, preallocate: 64 * 1024);
        for (int i = 1; i <= 5; i++) await crashed.AppendAsync(i, Env(), Body(i));
        await crashed.MarkDoneAsync(2, [0]);
        var path = SegmentFiles().Single();
        Assert.True(new FileInfo(path).Length > 5 * 100 + Header, "the crashed spool had space preallocated");
        // No DisposeAsync: the zeros stay, as after a crash.
        await using (var reopened = OpenPreallocating(segmentSize: 1 << 20, preallocate: 0))
        {
            Assert.Equal([1L, 3L, 4L, 5L], reopened.Recover().Select(r => r.Message.Mid).Order().ToArray());
            Assert.Equal(Body(5), (await reopened.ReadBodyAsync(5)).ToArray());
        }
        Assert.Contains("spool_preallocated_tail", _events);
        Assert.DoesNotContain("spool_torn_tail", _events);
        Assert.DoesNotContain("spool_segment_corrupt", _events);
        await crashed.DisposeAsync();
    }

    [Fact]
    public async Task Rolled_segments_end_with_their_last_record()
    {
        var crashed = OpenPreallocating(segmentSize: 8 * 1024, preallocate: 4 * 1024);
        for (int i = 1; i <= 40; i++) await crashed.AppendAsync(i, Env(), Body(i, 1000));
        Assert.True(SegmentFiles().Length >= 4, $"expected several segments, got {SegmentFiles().Length}");
        // Every finished segment was cut back to its data before the roll: no zeros in the middle of the spool.
        foreach (var finished in SegmentFiles()[..^1])
        {
            var bytes = File.ReadAllBytes(finished);
            Assert.NotEqual(0, bytes[^1]);
        }
        await using (var reopened = OpenPreallocating(segmentSize: 8 * 1024, preallocate: 4 * 1024))
        {
            Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), reopened.Recover().Select(r => r.Message.Mid).Order());
            await reopened.AppendAsync(41, Env(), Body(41, 1000));
        }
        Assert.DoesNotContain("spool_torn_tail", _events);
        Assert.DoesNotContain("spool_segment_corrupt", _events);
        await using (var again = Open(segmentSize: 8 * 1024)) Assert.Equal(41, again.Recover().Count);
        GC.KeepAlive(crashed); // never disposed: it would cut the file back to what it wrote, under the reopened spool
    }

    [Fact]
    public async Task A_clean_close_cuts_the_active_segment_back_to_its_data()
    {
        await using (var spool = OpenPreallocating(segmentSize: 1 << 20, preallocate: 64 * 1024))
        {
            await spool.AppendAsync(1, Env(), Body(1));
            Assert.Equal(Header + 64 * 1024, new FileInfo(SegmentFiles().Single()).Length);
        }
        var length = new FileInfo(SegmentFiles().Single()).Length;
        Assert.InRange(length, Header + 100, Header + 1024); // one ~100-byte body and its envelope
        await using (var spool = OpenPreallocating(segmentSize: 1 << 20, preallocate: 0)) Assert.Single(spool.Recover());
        Assert.DoesNotContain("spool_preallocated_tail", _events);
    }

    private string NextSegment => Path.Combine(Dir, "next-segment.tmp");

    private static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, what);
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task The_next_segment_is_zero_filled_ahead_and_renamed_at_the_roll()
    {
        // The roll must not wait for a fresh segment's zero-fill (the writer's data starts where that fill starts):
        // the next segment is created, headed and filled before it is needed, under a name recovery does not read.
        await using (var spool = OpenPreallocating(segmentSize: 8 * 1024, preallocate: 4 * 1024))
        {
            await spool.AppendAsync(1, Env(), Body(1, 1000));
            await Until(() => File.Exists(NextSegment) && new FileInfo(NextSegment).Length == Header + 4 * 1024, "next segment not prepared");
            Assert.Single(SegmentFiles());
            for (int i = 2; i <= 10; i++) await spool.AppendAsync(i, Env(), Body(i, 1000));
            Assert.True(SegmentFiles().Length >= 2, "no roll");
            // The rolled-to segment was the prepared one: it starts with the header and zeros, its data after them.
            Assert.True(new FileInfo(SegmentFiles()[1]).Length >= Header + 4 * 1024);
            await Until(() => File.Exists(NextSegment), "no next segment prepared after the roll");
            Assert.Equal(Body(10, 1000), (await spool.ReadBodyAsync(10)).ToArray());
        }
        Assert.False(File.Exists(NextSegment), "a clean close removes the prepared segment");
        await using var reopened = OpenPreallocating(segmentSize: 8 * 1024, preallocate: 4 * 1024);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), reopened.Recover().Select(r => r.Message.Mid).Order());
        Assert.DoesNotContain("spool_torn_tail", _events);
        Assert.DoesNotContain("spool_segment_corrupt", _events);
    }

    [Fact]
    public async Task A_prepared_segment_left_by_a_crash_is_never_read_as_mail()
    {
        await using (var spool = OpenPreallocating(segmentSize: 1 << 20, preallocate: 0))
            for (int i = 1; i <= 3; i++) await spool.AppendAsync(i, Env(), Body(i));
        // The worst leftover: a file under the prepared name holding valid records (it never became a segment, so
        // nothing in it was acknowledged).
        File.Copy(SegmentFiles().Single(), NextSegment);
        File.Delete(SegmentFiles().Single());
        await using var reopened = OpenPreallocating(segmentSize: 1 << 20, preallocate: 0);
        Assert.Empty(reopened.Recover());
        // Removed at open; the running spool may have prepared a fresh one (a header, no zeros at preallocate 0).
        Assert.True(!File.Exists(NextSegment) || new FileInfo(NextSegment).Length == Header, "the leftover was kept");
    }
}
