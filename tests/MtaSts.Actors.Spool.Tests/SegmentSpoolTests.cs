using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Spool.Tests;

public sealed class SegmentSpoolTests : SpoolTestBase
{
    [Fact]
    public async Task Append_then_read_body_round_trips_and_counts()
    {
        await using var spool = Open();
        Assert.Empty(spool.Recover());
        var body = Body(1, 5000);
        var stored = await spool.AppendAsync(1, Env(2), body);
        Assert.Equal(1, stored.Mid);
        Assert.Equal(5000, stored.BodyLength);
        Assert.Equal(body, (await spool.ReadBodyAsync(1)).ToArray());
        Assert.Equal(1, spool.Count);
        Assert.Equal(1, spool.HighestMid);
        Assert.Equal(1, spool.Appends);
        Assert.True(spool.Fsyncs >= 1);
        Assert.True(spool.BytesWritten > 5000);
    }

    [Fact]
    public async Task Empty_body_round_trips()
    {
        await using var spool = Open();
        await spool.AppendAsync(3, Env(), ReadOnlyMemory<byte>.Empty);
        Assert.Equal(0, (await spool.ReadBodyAsync(3)).Length);
    }

    [Fact]
    public async Task Concurrent_appends_are_group_committed()
    {
        const int n = 500;
        await using var spool = Open();
        spool.Recover();
        // All appends are enqueued before the first fsync can finish: the writer must cover many with one fsync.
        var tasks = Enumerable.Range(1, n).Select(i => spool.AppendAsync(i, Env(), Body(i))).ToArray();
        var results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(n, results.Length);
        Assert.Equal(n, spool.Appends);
        Assert.True(spool.Fsyncs < n, $"expected group commit, got {spool.Fsyncs} fsyncs for {n} appends");
        Assert.Equal(n, spool.Count);
        for (int i = 1; i <= n; i += 37) Assert.Equal(Body(i), (await spool.ReadBodyAsync(i)).ToArray());
    }

    [Fact]
    public async Task Concurrent_done_marks_are_group_committed()
    {
        const int n = 200;
        await using var spool = Open();
        await Task.WhenAll(Enumerable.Range(1, n).Select(i => spool.AppendAsync(i, Env(), Body(i))));
        long before = spool.Fsyncs;
        await Task.WhenAll(Enumerable.Range(1, n).Select(i => spool.MarkDoneAsync(i, [0]).AsTask())).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(0, spool.Count);
        Assert.Equal(n, spool.DoneRecords);
        Assert.True(spool.Fsyncs - before < n);
    }

    [Fact]
    public async Task A_drained_index_gives_its_arrays_back_and_stays_usable()
    {
        // A burst of 20,000 queued messages, all but 100 delivered: the index must not keep 20,000 slots (a Dictionary
        // keeps its grown capacity: ≈ 8.7 MB after 100,000 messages in DestinationMemoryBench).
        const int n = 20_000;
        await using var spool = Open();
        await Task.WhenAll(Enumerable.Range(1, n).Select(i => spool.AppendAsync(i, Env(), Body(i, 10))));
        Assert.True(spool.IndexCapacity >= n);
        await Task.WhenAll(Enumerable.Range(1, n - 100).Select(i => spool.MarkDoneAsync(i, [0]).AsTask())).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(100, spool.Count);
        // Trimmed once it fell to 1/8 of its capacity, to about the count at that moment; below 4,096 slots it is left
        // alone. Where exactly the trim lands depends on how the done-marks were batched (bigger batches on a loaded box).
        Assert.True(spool.IndexCapacity < 4096, $"capacity {spool.IndexCapacity} after draining to 100");
        // What is left is still found, and new mail still goes in.
        Assert.Equal(Body(n, 10), (await spool.ReadBodyAsync(n)).ToArray());
        await spool.AppendAsync(n + 1, Env(), Body(n + 1, 10));
        Assert.Equal(101, spool.Count);
    }

    [Fact]
    public async Task A_reopened_spool_with_few_live_messages_holds_a_small_index()
    {
        const int n = 20_000;
        await using (var spool = Open())
        {
            await Task.WhenAll(Enumerable.Range(1, n).Select(i => spool.AppendAsync(i, Env(), Body(i, 10))));
            await Task.WhenAll(Enumerable.Range(1, n - 10).Select(i => spool.MarkDoneAsync(i, [0]).AsTask())).WaitAsync(TimeSpan.FromMinutes(2));
        }
        await using var reopened = Open();
        Assert.Equal(10, reopened.Count);
        Assert.True(reopened.IndexCapacity <= n / 8, $"capacity {reopened.IndexCapacity} after recovery of 10");
    }

    [Fact]
    public async Task Reads_run_concurrently_with_appends()
    {
        await using var spool = Open(segmentSize: 64 * 1024);
        await spool.AppendAsync(1, Env(), Body(1, 3000));
        var writers = Task.WhenAll(Enumerable.Range(2, 300).Select(i => spool.AppendAsync(i, Env(), Body(i, 3000))));
        for (int k = 0; k < 50; k++) Assert.Equal(Body(1, 3000), (await spool.ReadBodyAsync(1)).ToArray());
        await writers.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(Body(300, 3000), (await spool.ReadBodyAsync(300)).ToArray());
    }

    [Fact]
    public async Task Recovery_after_reopen_returns_outstanding_recipients_and_envelopes()
    {
        var env = new Envelope("bounce@example.org",
            [new Recipient(0, "a@one.example", DsnNotify.Success | DsnNotify.Failure, "rfc822;A@one.example"),
             new Recipient(1, "b@two.example", DsnNotify.Never),
             new Recipient(2, "c@three.example")],
            new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.FromHours(-5)),
            Icid: 42, ClientHelo: "app.internal", ClientAddress: "::1", EnvId: "env+2Did", Ret: DsnRet.Headers,
            EightBitMime: true, SmtpUtf8: true);
        await using (var spool = Open())
        {
            await spool.AppendAsync(10, env, Body(10));
            await spool.AppendAsync(11, Env(1), Body(11));
            await spool.AppendAsync(12, Env(2), Body(12));
            await spool.MarkDoneAsync(10, [1]);
            await spool.MarkDoneAsync(11, [0]);
            await spool.MarkDoneAsync(12, [0, 1, 0]);
            Assert.Equal(1, spool.Count);
        }
        await using (var spool = Open())
        {
            var recovered = spool.Recover();
            var r = Assert.Single(recovered);
            Assert.Equal(10, r.Message.Mid);
            Assert.Equal([0, 2], r.OutstandingRids);
            var e = r.Message.Envelope;
            Assert.Equal(env.ReversePath, e.ReversePath);
            Assert.Equal(env.ReceivedAt, e.ReceivedAt);
            Assert.Equal(env.ReceivedAt.Offset, e.ReceivedAt.Offset);
            Assert.Equal(env.Recipients, e.Recipients);
            Assert.Equal(env with { Recipients = e.Recipients }, e);
            Assert.Equal(12, spool.HighestMid);
            Assert.Equal(Body(10), (await spool.ReadBodyAsync(10)).ToArray());
            // Still writable after recovery, and done-marks from before are honoured.
            await spool.MarkDoneAsync(10, [0, 2]);
            await spool.AppendAsync(13, Env(), Body(13));
        }
        await using (var spool = Open())
        {
            var r = Assert.Single(spool.Recover());
            Assert.Equal(13, r.Message.Mid);
            Assert.Equal([0], r.OutstandingRids);
        }
    }

    [Theory]
    [InlineData("partial-header")]
    [InlineData("partial-payload")]
    [InlineData("bad-crc")]
    [InlineData("zeros")]
    public async Task Torn_tail_is_truncated_and_earlier_records_survive(string damage)
    {
        await using (var spool = Open())
        {
            await spool.AppendAsync(1, Env(), Body(1));
            await spool.AppendAsync(2, Env(), Body(2));
        }
        // Measured after the close: an open spool has space preallocated past its data.
        long goodLength = new FileInfo(SegmentFiles().Last()).Length;
        if (damage == "bad-crc")
        {
            await using var spool = Open();
            spool.Recover();
            await spool.AppendAsync(3, Env(), Body(3, 400));
        }
        var path = SegmentFiles().Last();
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            switch (damage)
            {
                case "partial-header":
                    fs.Seek(0, SeekOrigin.End);
                    fs.Write([0x10, 0x00, 0x00]);
                    break;
                case "partial-payload":
                    fs.Seek(0, SeekOrigin.End);
                    var header = new byte[9 + 20];
                    BitConverter.TryWriteBytes(header, 5000u);
                    header[8] = 1;
                    fs.Write(header);
                    break;
                case "bad-crc":
                    fs.Seek(-10, SeekOrigin.End); // inside MID 3's body: the crash hit before the data reached the disk
                    fs.WriteByte(0xFF);
                    break;
                case "zeros":
                    fs.Seek(0, SeekOrigin.End);
                    fs.Write(new byte[4096]);
                    break;
            }
        }
        // Without preallocation while open, so that the file length shows what recovery cut off.
        await using (var spool = Open(preallocate: false))
        {
            var mids = spool.Recover().Select(r => r.Message.Mid).ToArray();
            Assert.Equal([1L, 2L], mids);
            Assert.Equal(goodLength, new FileInfo(path).Length);
            Assert.Equal(Body(2), (await spool.ReadBodyAsync(2)).ToArray());
            await spool.AppendAsync(4, Env(), Body(4));
        }
        await using (var spool = Open())
        {
            Assert.Equal([1L, 2L, 4L], spool.Recover().Select(r => r.Message.Mid).ToArray());
            Assert.Equal(Body(4), (await spool.ReadBodyAsync(4)).ToArray());
        }
    }

    [Fact]
    public async Task Torn_segment_header_is_rewritten()
    {
        await using (var spool = Open()) await spool.AppendAsync(1, Env(), Body(1));
        File.WriteAllBytes(Path.Combine(Dir, "seg-00000002.log"), [0x4D, 0x54]); // crash while creating the next segment
        await using (var spool = Open())
        {
            Assert.Single(spool.Recover());
            await spool.AppendAsync(2, Env(), Body(2));
        }
        await using (var spool = Open()) Assert.Equal(2, spool.Recover().Count);
    }

    [Fact]
    public async Task Segments_roll_and_are_deleted_when_all_their_messages_are_done()
    {
        await using var spool = Open(segmentSize: 8 * 1024);
        for (int i = 1; i <= 40; i++) await spool.AppendAsync(i, Env(2), Body(i, 1000));
        Assert.True(SegmentFiles().Length >= 4, $"expected several segments, got {SegmentFiles().Length}");
        for (int i = 1; i <= 40; i++) await spool.MarkDoneAsync(i, [0]);
        Assert.Equal(40, spool.Count); // rid 1 still outstanding everywhere
        Assert.Equal(0, spool.SegmentsDeleted);
        for (int i = 1; i <= 40; i++) await spool.MarkDoneAsync(i, [1]);
        Assert.Equal(0, spool.Count);
        Assert.True(spool.SegmentsDeleted >= 3);
        // Only segments written after the last message (holding Done records) and the active one may remain.
        Assert.Equal(spool.SegmentIds.Count, SegmentFiles().Length);
        Assert.DoesNotContain(SegmentFiles(), f => f.EndsWith("seg-00000001.log", StringComparison.Ordinal));
        await Assert.ThrowsAsync<KeyNotFoundException>(async () => await spool.ReadBodyAsync(1));
    }

    [Fact]
    public async Task A_segment_holding_done_records_outlives_the_segment_of_those_messages()
    {
        await using (var spool = Open(segmentSize: 4096))
        {
            await spool.AppendAsync(1, Env(2), Body(1, 3000)); // segment 1
            await spool.AppendAsync(2, Env(1), Body(2, 3000)); // segment 2
            await spool.MarkDoneAsync(1, [0]);                 // Done(1,[0]) lands in segment 2
            await spool.AppendAsync(3, Env(1), Body(3, 3000)); // segment 3 (active)
            await spool.MarkDoneAsync(2, [0]);                 // segment 2 has no live message now …
            Assert.Contains(2L, spool.SegmentIds);             // … but holds Done(1,[0]) while segment 1 lives
        }
        await using (var spool = Open(segmentSize: 4096))
        {
            var r = spool.Recover();
            Assert.Equal([1L, 3L], r.Select(x => x.Message.Mid).ToArray());
            Assert.Equal([1], r[0].OutstandingRids);
            await spool.MarkDoneAsync(1, [1]);
            Assert.DoesNotContain(1L, spool.SegmentIds);
            Assert.DoesNotContain(2L, spool.SegmentIds);
            Assert.Contains(3L, spool.SegmentIds);
        }
        await using (var spool = Open(segmentSize: 4096))
            Assert.Equal([3L], spool.Recover().Select(x => x.Message.Mid).ToArray());
    }

    [Fact]
    public async Task A_deleted_segments_last_handle_is_closed_after_the_unlink_and_nothing_waits_for_it()
    {
        // Closing the last handle of an unlinked 64 MiB segment frees its blocks (45 ms on ext4): the writer hands the
        // handles over and goes on. Here the hand-over keeps them open: the files are gone, the handles still open,
        // and appends, done-marks and body reads go on meanwhile.
        await using var spool = Open(segmentSize: 8 * 1024);
        var held = new List<Microsoft.Win32.SafeHandles.SafeFileHandle>();
        spool.ReleaseSegmentHandles = hs => { lock (held) held.AddRange(hs); };
        for (int i = 1; i <= 40; i++) await spool.AppendAsync(i, Env(), Body(i, 1000));
        Assert.Equal(Body(3, 1000), (await spool.ReadBodyAsync(3)).ToArray()); // segment 1 gets a read handle
        for (int i = 1; i <= 40; i++) await spool.MarkDoneAsync(i, [0]);
        Assert.True(spool.SegmentsDeleted >= 3);
        Assert.DoesNotContain(SegmentFiles(), f => f.EndsWith("seg-00000001.log", StringComparison.Ordinal));
        lock (held)
        {
            Assert.Equal(spool.SegmentsDeleted, held.Count); // one per deleted segment, read before or not
            Assert.All(held, h => Assert.False(h.IsClosed));
        }
        await spool.AppendAsync(41, Env(), Body(41)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Body(41), (await spool.ReadBodyAsync(41)).ToArray());
        lock (held) foreach (var h in held) h.Dispose();
    }

    [Fact]
    public async Task The_default_release_closes_the_deleted_segments_handles()
    {
        await using var spool = Open(segmentSize: 8 * 1024);
        var released = new List<Microsoft.Win32.SafeHandles.SafeFileHandle>();
        var close = spool.ReleaseSegmentHandles;
        spool.ReleaseSegmentHandles = hs => { lock (released) released.AddRange(hs); close(hs); };
        for (int i = 1; i <= 40; i++) await spool.AppendAsync(i, Env(), Body(i, 1000));
        for (int i = 1; i <= 40; i++) await spool.MarkDoneAsync(i, [0]);
        Assert.True(spool.SegmentsDeleted >= 3);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            lock (released) if (released.Count == spool.SegmentsDeleted && released.All(h => h.IsClosed)) break;
            Assert.True(DateTime.UtcNow < deadline, "deleted segments' handles not closed");
            await Task.Delay(20);
        }
    }

    [Fact]
    public void A_deleted_segment_is_freed_in_steps_then_closed()
    {
        Directory.CreateDirectory(Dir);
        var path = Path.Combine(Dir, "deleted.log");
        File.WriteAllBytes(path, new byte[10 * 1024 * 1024]);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        File.Delete(path); // as the spool does: the name goes first, the blocks with the steps
        var steps = new List<long>();
        SegmentSpool.ReleaseGradually(handle, 4 * 1024 * 1024, TimeSpan.FromMilliseconds(1), steps.Add);
        Assert.Equal([6L * 1024 * 1024, 2L * 1024 * 1024, 0L], steps);
        Assert.True(handle.IsClosed);
    }

    [Fact]
    public async Task Highest_mid_survives_when_every_segment_is_gone()
    {
        var spool = Open(segmentSize: 4096);
        for (int i = 1; i <= 10; i++) await spool.AppendAsync(i, Env(), Body(i, 3000));
        for (int i = 1; i <= 10; i++) await spool.MarkDoneAsync(i, [0]);
        Assert.True(spool.SegmentsDeleted > 0);
        // Simulate a crash (no DisposeAsync) and an operator removing every segment: only the high-water remains.
        foreach (var f in SegmentFiles()) File.Delete(f);
        await using (var reopened = Open())
        {
            Assert.Equal(10, reopened.HighestMid);
            Assert.Empty(reopened.Recover());
        }
        await spool.DisposeAsync();
    }

    [Fact]
    public async Task Highest_mid_comes_from_done_records_and_highwater_after_clean_shutdown()
    {
        await using (var spool = Open())
        {
            await spool.AppendAsync(5, Env(), Body(5));
            await spool.AppendAsync(9, Env(), Body(9));
            await spool.MarkDoneAsync(9, [0]);
        }
        await using (var spool = Open()) Assert.Equal(9, spool.HighestMid);
    }

    [Fact]
    public async Task Mark_done_is_idempotent_and_ignores_unknown_mids()
    {
        await using var spool = Open();
        await spool.AppendAsync(1, Env(2), Body(1));
        await spool.MarkDoneAsync(1, [0]);
        long records = spool.DoneRecords;
        await spool.MarkDoneAsync(1, [0]);
        await spool.MarkDoneAsync(77, [0]);
        Assert.Equal(records, spool.DoneRecords);
        Assert.Equal([1], Assert.Single(spool.Recover()).OutstandingRids);
    }

    [Fact]
    public async Task Mark_done_reports_the_call_that_finished_the_message()
    {
        await using var spool = Open();
        await spool.AppendAsync(1, Env(3), Body(1));
        Assert.False(await spool.MarkDoneAsync(1, [0]));
        Assert.False(await spool.MarkDoneAsync(1, [0]));
        Assert.True(await spool.MarkDoneAsync(1, [2, 1]));
        Assert.False(await spool.MarkDoneAsync(1, [1]));
        Assert.False(await spool.MarkDoneAsync(99, [0]));
    }

    [Fact]
    public async Task Recipients_beyond_rid_63_are_tracked_and_recovered()
    {
        // The outstanding set is a bit mask for RIDs 0-63 and a set above: both halves must survive done marks and a reopen.
        await using (var spool = Open())
        {
            await spool.AppendAsync(1, Env(130), Body(1));
            Assert.False(await spool.MarkDoneAsync(1, Enumerable.Range(0, 130).Where(r => r is not (5 or 63 or 64 or 129)).ToArray()));
            Assert.Equal([5, 63, 64, 129], Assert.Single(spool.Recover()).OutstandingRids);
            Assert.False(await spool.MarkDoneAsync(1, [63, 64]));
        }
        await using (var spool = Open())
        {
            var r = Assert.Single(spool.Recover());
            Assert.Equal([5, 129], r.OutstandingRids);
            Assert.Equal(130, r.Message.Envelope.Recipients.Count);
            Assert.True(await spool.MarkDoneAsync(1, [129, 5]));
            Assert.Empty(spool.Recover());
        }
    }

    [Fact]
    public async Task Recover_can_be_called_again_and_rereads_envelopes_from_the_segment()
    {
        // The scan's decoded envelopes are dropped after the first Recover (memory per queued message); live appends
        // never keep theirs. A second call must still return the exact envelopes.
        await using (var spool = Open()) await spool.AppendAsync(1, Env(2, from: "first@example.org"), Body(1));
        await using (var spool = Open())
        {
            var first = Assert.Single(spool.Recover()).Message.Envelope;
            await spool.AppendAsync(2, Env(1, from: "second@example.org"), Body(2));
            var again = spool.Recover();
            Assert.Equal(2, again.Count);
            Assert.Equal(first with { Recipients = again[0].Message.Envelope.Recipients }, again[0].Message.Envelope);
            Assert.Equal(first.Recipients, again[0].Message.Envelope.Recipients);
            Assert.Equal("second@example.org", again[1].Message.Envelope.ReversePath);
            Assert.Equal(Body(2), (await spool.ReadBodyAsync(2)).ToArray());
        }
    }

    [Fact]
    public async Task Duplicate_mid_is_rejected()
    {
        await using var spool = Open();
        await spool.AppendAsync(1, Env(), Body(1));
        await Assert.ThrowsAsync<InvalidOperationException>(() => spool.AppendAsync(1, Env(), Body(1)));
        Assert.Equal(1, spool.Count);
    }

    [Fact]
    public async Task Disposed_spool_refuses_appends()
    {
        var spool = Open();
        await spool.AppendAsync(1, Env(), Body(1));
        await spool.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => spool.AppendAsync(2, Env(), Body(2)));
    }

    [Fact]
    public void Foreign_file_is_not_overwritten()
    {
        Directory.CreateDirectory(Dir);
        File.WriteAllText(Path.Combine(Dir, "seg-00000001.log"), "this is not a spool segment, keep me");
        var spool = Open();
        Assert.Throws<InvalidDataException>(() => spool.Recover());
        Assert.Equal("this is not a spool segment, keep me", File.ReadAllText(Path.Combine(Dir, "seg-00000001.log")));
    }

    [Fact]
    public void Crc32_matches_the_standard_check_value()
    {
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));
        var data = Body(5, 1000);
        Assert.Equal(Crc32.Compute(data), Crc32.Append(Crc32.Compute(data.AsSpan(0, 333)), data.AsSpan(333)));
    }

    [Fact]
    public void Crc32_long_inputs_take_the_vector_path_and_agree_with_the_table()
    {
        // zlib's crc32 (Python binascii.crc32) of these 100,000 bytes: an independent check of the vectorised path.
        var data = new byte[100_000];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(i * 31 % 251);
        Assert.Equal(0x57F9F375u, Crc32.Compute(data));
        // Byte-sized appends stay on the table; every split across the 2,048-byte switch-over gives the same CRC.
        foreach (int split in new[] { 1, 2047, 2048, 2049, 50_000, 97_952, 99_999 })
        {
            Assert.Equal(0x57F9F375u, Crc32.Append(Crc32.Compute(data.AsSpan(0, split)), data.AsSpan(split)));
            uint bytewise = Crc32.Compute(data.AsSpan(0, split));
            for (int i = split; i < Math.Min(split + 3000, data.Length); i++) bytewise = Crc32.Append(bytewise, data.AsSpan(i, 1));
            Assert.Equal(Crc32.Compute(data.AsSpan(0, Math.Min(split + 3000, data.Length))), bytewise);
        }
    }

    [Fact]
    public void Envelope_codec_refuses_unknown_versions()
    {
        var bytes = EnvelopeCodec.Serialize(Env(3));
        Assert.Equal(3, EnvelopeCodec.Deserialize(bytes).Recipients.Count);
        bytes[0] = 99;
        Assert.Throws<InvalidDataException>(() => EnvelopeCodec.Deserialize(bytes));
    }
}

public sealed class SegmentSpoolBodyStreamTests : SpoolTestBase
{
    [Fact]
    public async Task Open_body_streams_the_stored_bytes_and_can_be_read_again()
    {
        await using var spool = Open(segmentSize: 64 * 1024);
        spool.Recover();
        for (int i = 1; i <= 40; i++) await spool.AppendAsync(i, Env(), Body(i, 3000 + i * 7)); // several segments
        foreach (var mid in new long[] { 1, 17, 40 })
        {
            await using var s = await spool.OpenBodyAsync(mid);
            Assert.Equal(3000 + mid * 7, s.Length);
            var first = new MemoryStream();
            var chunk = new byte[1000]; // smaller than the body: several positional reads
            int n;
            while ((n = await s.ReadAsync(chunk)) > 0) first.Write(chunk, 0, n);
            Assert.Equal(Body(mid, 3000 + (int)mid * 7), first.ToArray());
            s.Position = 0;
            var again = new MemoryStream();
            s.CopyTo(again);
            Assert.Equal(first.ToArray(), again.ToArray());
            Assert.Equal(0, await s.ReadAsync(chunk)); // end of this body, not the next record
        }
    }

    [Fact]
    public async Task Open_body_of_an_unknown_or_empty_message()
    {
        await using var spool = Open();
        await spool.AppendAsync(3, Env(), ReadOnlyMemory<byte>.Empty);
        await using var empty = await spool.OpenBodyAsync(3);
        Assert.Equal(0, empty.Length);
        Assert.Equal(0, await empty.ReadAsync(new byte[10]));
        await Assert.ThrowsAsync<KeyNotFoundException>(async () => await spool.OpenBodyAsync(99));
    }
}
