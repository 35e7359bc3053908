using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using MtaSts.Actors.DestinationControls;
using MtaSts.Actors.Dns;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Engine.Intake;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Composition.Tests;

/// <summary>The destinations feature composed as the gateway composes it (<see cref="DestinationHosting.AddDestinations"/>,
/// <see cref="IntakeHosting.AddIntake"/> and <see cref="ClusterJoin.AddClusterJoin"/> on a single node), with a scripted transport, driven through its
/// shard region.</summary>
public sealed class DestinationsFeatureTests(ITestOutputHelper output) : Akka.Hosting.TestKit.TestKit(nameof(DestinationsFeatureTests), output)
{
    // The shipped akka.conf minus the SQL journals (the TestKit's in-memory ones stand in).
    private const string Hocon = """
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
        akka.cluster.roles = ["delivery"]
        akka.cluster.sharding { role = "delivery", state-store-mode = ddata, remember-entities = off, passivate-idle-entity-after = off }
        akka.actor.serializers { mtasts-engine = "MtaSts.Actors.Engine.Destination.DestinationSerializer, MtaSts.Actors.Engine" }
        akka.actor.serialization-bindings { "MtaSts.Actors.Engine.Destination.IDestinationProtocolMember, MtaSts.Actors.Engine" = mtasts-engine }
        akka.actor.serialization-identifiers { "MtaSts.Actors.Engine.Destination.DestinationSerializer, MtaSts.Actors.Engine" = 7461 }
        """;

    private readonly RecordingTransport _transport = new();
    private readonly PendingIndex _pending = new();
    private readonly StringWriter _log = new();
    private DestinationProfile _profile = DestinationProfile.Default with { MtaSts = false };
    private long _mid;
    private Dispatcher? _dispatcher;

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider)
    {
        var log = new MailLog(TextWriter.Synchronized(_log));
        var services = new DeliveryServices(_transport, new NullSpool(), log, new IdSequence(),
            _ => new DestinationSettings(_profile, BounceProfile.Default), new NoBounces(), TimeProvider.System, () => null, new EngineTuning());
        builder.AddHocon(ConfigurationFactory.ParseString(Hocon), HoconAddMode.Prepend)
            .AddDestinations(services, _pending)
            .AddIntake(_pending, log, started: d => _dispatcher = d)
            .AddClusterJoin(new ClusterFormation(), log);
    }

    private async Task<IActorRef> RegionAsync() => await ActorRegistry.GetAsync<DestinationRegion>(TestContext.Current.CancellationToken);

    private EnqueueRecipients Message(string domain, int recipients)
    {
        var message = new MessageRef(Interlocked.Increment(ref _mid), "app@sender.test", DateTimeOffset.UtcNow, 100);
        var rcpts = Enumerable.Range(0, recipients).Select(i => new RecipientRef(i, $"u{i}@{domain}")).ToArray();
        _pending.Add(DestinationDomain.Parse(domain), message, rcpts);
        return new EnqueueRecipients(DestinationDomain.Parse(domain), message, rcpts);
    }

    [Fact]
    public async Task Mail_told_to_the_region_is_delivered_by_the_domains_entity_and_its_queue_empties()
    {
        var region = await RegionAsync();
        region.Tell(Message("b.example", recipients: 3));

        await AwaitAssertAsync(() => Assert.Equal(3, _transport.Recipients("b.example")), TimeSpan.FromSeconds(20), cancellationToken: TestContext.Current.CancellationToken);
        await AwaitAssertAsync(async () =>
        {
            var status = await region.Ask<DestinationStatus>(new GetDestinationStatus(DestinationDomain.Parse("b.example")), TimeSpan.FromSeconds(5));
            Assert.Equal(0, status.QueuedRecipients);
        }, TimeSpan.FromSeconds(10), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Contains("MID 1 RID [0] Response 250 ok", _log.ToString());
    }

    [Fact]
    public async Task A_profile_with_max_recipients_per_transaction_2_sends_batches_of_2()
    {
        _profile = _profile with { MaxRecipientsPerTransaction = 2 };
        var region = await RegionAsync();
        region.Tell(Message("c.example", recipients: 5));

        await AwaitAssertAsync(() => Assert.Equal(5, _transport.Recipients("c.example")), TimeSpan.FromSeconds(20), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal([1, 2, 2], _transport.Batches("c.example").Order());
    }

    [Fact]
    public async Task The_intake_dispatcher_is_handed_over_while_the_system_starts_and_splits_a_message_by_domain()
    {
        await RegionAsync();
        Assert.NotNull(_dispatcher); // before the cluster join: bounces and TLS-RPT reports can dispatch from the start
        var envelope = new MtaSts.Actors.Spool.Envelope("app@sender.test",
            [new Recipient(0, "a@d.example", DsnNotify.Default), new Recipient(1, "b@e.example", DsnNotify.Default), new Recipient(2, "c@d.example", DsnNotify.Default)],
            DateTimeOffset.UtcNow);
        _dispatcher.Dispatch(new SpooledMessage(Interlocked.Increment(ref _mid), envelope, 100));

        await AwaitAssertAsync(() =>
        {
            Assert.Equal(2, _transport.Recipients("d.example"));
            Assert.Equal(1, _transport.Recipients("e.example"));
        }, TimeSpan.FromSeconds(20), cancellationToken: TestContext.Current.CancellationToken);
    }

    /// <summary>Accepts every recipient and records each transaction's recipients per domain.</summary>
    private sealed class RecordingTransport : IDeliveryTransport
    {
        private readonly ConcurrentQueue<(string Domain, int Recipients)> _jobs = new();

        public int Recipients(string domain) => Batches(domain).Sum();
        public int[] Batches(string domain) => _jobs.Where(j => j.Domain == domain).Select(j => j.Recipients).ToArray();

        public Task<IDeliverySession> OpenAsync(SessionRequest request, CancellationToken ct) =>
            Task.FromResult<IDeliverySession>(new Session(this, request.Domain.Name));

        private sealed class Session(RecordingTransport t, string domain) : IDeliverySession
        {
            public string Peer => $"recorder [{domain}]";

            public Task<JobResult> SendAsync(DeliveryJob job, CancellationToken ct)
            {
                t._jobs.Enqueue((domain, job.Recipients.Count));
                return Task.FromResult(new JobResult(job.Message.Mid,
                    job.Recipients.Select(r => new RecipientOutcome(r.Rid, RecipientOutcomeKind.Delivered, "250 ok", "2.0.0")).ToArray(), true));
            }

            public Task CloseAsync(CancellationToken ct) => Task.CompletedTask;
            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    private sealed class NullSpool : ISpool
    {
        public Task<SpooledMessage> AppendAsync(long mid, MtaSts.Actors.Spool.Envelope envelope, MessageBody body, CancellationToken ct = default) =>
            throw new NotSupportedException();
        public ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(long mid, CancellationToken ct = default) => ValueTask.FromResult(ReadOnlyMemory<byte>.Empty);
        public ValueTask<bool> MarkDoneAsync(long mid, IReadOnlyList<int> rids, CancellationToken ct = default) => ValueTask.FromResult(true);
        public IReadOnlyList<RecoveredMessage> Recover() => [];
        public long HighestMid => 0;
        public int Count => 0;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class NoBounces : IBounceSink
    {
        public Task QueueAsync(BounceRequest request, CancellationToken ct = default) => Task.CompletedTask;
    }
}
