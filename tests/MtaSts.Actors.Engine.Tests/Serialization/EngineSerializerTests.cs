using Akka.Configuration;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Tests.Serialization;

/// <summary>Every persisted event and sharded command goes through the explicit serializer (bound by the shipped
/// hocon/akka.conf), and reads back equal.</summary>
public sealed class EngineSerializerTests : TestKit
{
    private static readonly DateTimeOffset T = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    public EngineSerializerTests() : base(ConfigurationFactory.ParseString(
        File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "hocon", "akka.conf"))
        + "\nakka.actor.provider = local\nakka.cluster.sharding.journal-plugin-id = \"\"\n"))
    {
    }

    public static TheoryData<object> Members() =>
    [
        new RecipientsDeferred(42, [0, 3, 7], 2, T.AddMinutes(2), "4.2.2 - mailbox full ('452', ['4.2.2 mailbox full'])"),
        new RecipientsFinished(42, [0, 3]),
        new DeferralBatch([new RecipientsDeferred(1, [0], 1, T, "4.4.1 - refused"), new RecipientsDeferred(2, [0, 1], 3, T.AddSeconds(7), "4.4.1 - refused", 1)]),
        new RecipientsCounted(17, T),
        new DestinationSnapshot([new RetryRecord(1, 0, 3, T, "4.4.1 - refused")]),
        new DestinationSnapshot([new RetryRecord(1, 0, 3, T, "x")], [new RateCount(T, 5, TimeSpan.FromSeconds(10))]),
        new EnqueueRecipients(Dom("example.com"), new MessageRef(9, "", T, 2048, "env-1", DsnRet.Headers, true, true),
            [new RecipientRef(0, "a@example.com", DsnNotify.Failure | DsnNotify.Delay, "rfc822;A@example.com"), new RecipientRef(1, "b@example.com")]),
        new DeliverNow(Dom("example.com")),
        new Resume(Dom("example.com")),
        new GetDestinationStatus(Dom("example.com")),
        new DestinationStatus(Dom("example.com"), 5, 2, 1, 500, T, "4.4.1 - refused"),
        new DestinationStatus(Dom("example.com"), 0, 0, 0, 500, null, null),
        new DestinationStatus(Dom("example.com"), 3, 0, 0, 500, null, null, T, "admin token from 127.0.0.1"),
        new DestinationStatus(Dom("gmail.com"), 9, 4, 2, 500, T, "4.7.28 - x", Throttle:
            new DestinationThrottle("gmail-rate-limited", "421 4.7.28 rate limited", T, T.AddMinutes(10), 2, null, false)),
        new DestinationStatus(Dom("gmail.com"), 9, 4, 0, 500, T, null, Throttle: new DestinationThrottle("pace", "450 4.2.1 x", T, T, null, 12.5, true)),
        new DestinationSnapshot([], null, new Suspension(T, "alice from 10.0.0.1")),
        new DestinationSnapshot([new RetryRecord(1, 0, 3, T, "x")], [new RateCount(T, 5, TimeSpan.FromSeconds(10))], new Suspension(T, "admin token")),
        new SuspendDelivery(Dom("example.com"), "admin token from 127.0.0.1"),
        new ResumeDelivery(Dom("example.com"), "admin token from ::1"),
        new RemoveQueued(Dom("example.com"), 42, true, "admin token from 127.0.0.1"),
        new RemoveQueued(Dom("example.com"), null, false, "alice from 127.0.0.1"),
        new QueueRemoved(Dom("example.com"), 2, 3, 1),
        new DestinationSuspended(T, "admin token from 127.0.0.1"),
        new DestinationResumed(T.AddHours(1), "admin token from 127.0.0.1"),
    ];

    [Theory]
    [MemberData(nameof(Members))]
    public void Round_trips_through_the_bound_serializer(object value)
    {
        var serializer = Sys.Serialization.FindSerializerFor(value);
        Assert.IsType<DestinationSerializer>(serializer);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, value);
        var bytes = serializer.ToBinary(value);
        var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
        Assert.Equal(Json(value), Json(back));
    }

    [Fact]
    public void Snapshots_written_before_the_rate_window_existed_still_read()
    {
        var s = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(DestinationSnapshot));
        var v3 = s.ToBinary(new DestinationSnapshot([new RetryRecord(1, 2, 3, T, "e")]));
        var v1 = v3[..^5]; // ds1 had no trailing rate count (and no suspension flag)
        var back = (DestinationSnapshot)s.FromBinary(v1, "ds1");
        Assert.Equal(2, Assert.Single(back.Records).Rid);
        Assert.Null(back.Rate);
    }

    [Fact]
    public void Snapshots_and_statuses_written_before_suspension_existed_still_read()
    {
        var s = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(DestinationSnapshot));
        var v3 = s.ToBinary(new DestinationSnapshot([new RetryRecord(1, 2, 3, T, "e")], [new RateCount(T, 5, TimeSpan.FromSeconds(10))]));
        var back = (DestinationSnapshot)s.FromBinary(v3[..^1], "ds2"); // ds2 ended after the rate window
        Assert.Equal(5, Assert.Single(back.Rate!).Count);
        Assert.Null(back.Suspended);

        var st3 = s.ToBinary(new DestinationStatus(Dom("example.com"), 5, 2, 1, 500, T, "e", T, "alice"));
        var st2 = st3[..^1]; // st2 ended after the suspension: no throttle flag (1)
        var status = (DestinationStatus)s.FromBinary(st2, "st2");
        Assert.Equal("alice", status.SuspendedBy);
        Assert.Null(status.Throttle);
        var st1 = s.ToBinary(new DestinationStatus(Dom("example.com"), 5, 2, 1, 500, T, "e"))[..^10]; // no suspension ticks (8), by-flag (1), throttle flag (1)
        status = (DestinationStatus)s.FromBinary(st1, "st1");
        Assert.Equal(5, status.QueuedRecipients);
        Assert.False(status.Suspended);
    }

    [Fact]
    public void Unknown_manifests_fail_loudly()
    {
        var s = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(DeliverNow));
        Assert.Throws<System.Runtime.Serialization.SerializationException>(() => s.FromBinary([1, 2, 3], "zz9"));
    }

    // Records with list members compare by reference: compare their JSON forms.
    private static string Json(object o) => System.Text.Json.JsonSerializer.Serialize(o, o.GetType());
}
