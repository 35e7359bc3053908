using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Spool.Tests;

/// <summary>Reading a queued message back by MID (what a paged destination queue does when its window has room) and
/// the RID set the spool index and the queues keep per message.</summary>
public sealed class ReadMessageTests : SpoolTestBase
{
    [Fact]
    public async Task A_queued_message_reads_back_with_its_envelope_until_it_is_finished()
    {
        var env = Env(3) with { EnvId = "e1", Ret = DsnRet.Full };
        await using (var spool = Open())
        {
            Assert.True(spool.CanReadMessages);
            await spool.AppendAsync(5, env, Body(5, 300));
            await spool.MarkDoneAsync(5, [1]);
            var read = await spool.ReadMessageAsync(5);
            Assert.NotNull(read);
            Assert.Equal(300, read!.BodyLength);
            Assert.Equal(env with { Recipients = read.Envelope.Recipients }, read.Envelope);
            Assert.Equal(env.Recipients, read.Envelope.Recipients); // as appended: the caller filters by outstanding RIDs
            Assert.Null(await spool.ReadMessageAsync(6));
        }
        await using (var spool = Open())
        {
            // After a restart (and after Recover dropped the scanned envelopes) it is read from the segment.
            Assert.Equal([0, 2], Assert.Single(spool.Recover()).OutstandingRids);
            Assert.Equal(env.ReversePath, (await spool.ReadMessageAsync(5))!.Envelope.ReversePath);
            await spool.MarkDoneAsync(5, [0, 2]);
            Assert.Null(await spool.ReadMessageAsync(5));
        }
    }

    [Fact]
    public async Task Rids_above_63_are_tracked_like_the_low_ones()
    {
        var env = Env(70);
        await using (var spool = Open())
        {
            await spool.AppendAsync(1, env, Body(1));
            await spool.MarkDoneAsync(1, [.. Enumerable.Range(0, 69)]);
            Assert.Equal(1, spool.Count);
        }
        await using (var spool = Open())
        {
            Assert.Equal([69], Assert.Single(spool.Recover()).OutstandingRids);
            Assert.True(await spool.MarkDoneAsync(1, [69]));
            Assert.Equal(0, spool.Count);
        }
    }

    [Fact]
    public void RidSet_is_a_value_set()
    {
        var a = RidSet.Of([3, 0, 100, 3, 64]);
        Assert.Equal([0, 3, 64, 100], a.ToArray());
        Assert.Equal(4, a.Count);
        Assert.True(a.Contains(64));
        Assert.False(a.Contains(1));
        Assert.Equal(RidSet.Of([0, 3, 64, 100, 7]), a.Union(RidSet.Of([7])));
        Assert.Equal(RidSet.Of([3]), a.Except([0, 64, 100]));
        Assert.True(a.Except(a.ToArray()).IsEmpty);
        Assert.Equal(RidSet.Empty, a.Except(a.ToArray()));
        Assert.NotEqual(RidSet.Of([64]), RidSet.Of([65]));
    }
}
