using MtaSts.Actors.Dns;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>
/// Explicit binary serializer for every persisted event, snapshot and sharded command (never the default
/// Newtonsoft one: type names in payloads break on renames). String manifests are short and permanent: a changed
/// event gets a new manifest; old manifests stay readable forever. Bound to <see cref="IDestinationProtocolMember"/>.
/// </summary>
public sealed class DestinationSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 7461; // > 100, never reused

    public override int Identifier => Id;

    private const string DeferredV1Manifest = "rd1"; // without the delay-warning count (still readable)
    private const string DeferredManifest = "rd2";
    private const string FinishedManifest = "rf1";
    private const string DeferralBatchManifest = "db1";
    private const string SnapshotV1Manifest = "ds1"; // retry records only (still readable)
    private const string SnapshotV2Manifest = "ds2"; // + recipient-limit window (still readable)
    private const string SnapshotManifest = "ds3";   // + the operator's suspension
    private const string CountedManifest = "rc1";
    private const string EnqueueManifest = "eq1";
    private const string DeliverNowManifest = "dn1";
    private const string StatusQueryManifest = "gs1";
    private const string ResumeManifest = "rs1";
    private const string StatusV1Manifest = "st1"; // without the suspension (still readable)
    private const string StatusV2Manifest = "st2"; // without the throttle (still readable)
    private const string StatusManifest = "st3";
    // Operator actions (admin API): commands, their answer, and the journaled suspension.
    private const string SuspendManifest = "su1";
    private const string ResumeDeliveryManifest = "ru1";
    private const string RemoveQueuedManifest = "rq1";
    private const string QueueRemovedManifest = "qr1";
    private const string SuspendedManifest = "es1";
    private const string ResumedManifest = "er1";

    public override string Manifest(object o) => o switch
    {
        RecipientsDeferred => DeferredManifest,
        RecipientsFinished => FinishedManifest,
        DeferralBatch => DeferralBatchManifest,
        DestinationSnapshot => SnapshotManifest,
        RecipientsCounted => CountedManifest,
        EnqueueRecipients => EnqueueManifest,
        DeliverNow => DeliverNowManifest,
        GetDestinationStatus => StatusQueryManifest,
        Resume => ResumeManifest,
        DestinationStatus => StatusManifest,
        SuspendDelivery => SuspendManifest,
        ResumeDelivery => ResumeDeliveryManifest,
        RemoveQueued => RemoveQueuedManifest,
        QueueRemoved => QueueRemovedManifest,
        DestinationSuspended => SuspendedManifest,
        DestinationResumed => ResumedManifest,
        _ => throw new SerializationException($"DestinationSerializer cannot serialize {o.GetType()}"),
    };

    public override byte[] ToBinary(object obj)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms))
        {
            switch (obj)
            {
                case RecipientsDeferred d:
                    WriteDeferred(w, d);
                    break;
                case DeferralBatch b:
                    w.Write(b.Items.Count);
                    foreach (var d in b.Items) WriteDeferred(w, d);
                    break;
                case RecipientsFinished f:
                    w.Write(f.Mid); WriteInts(w, f.Rids);
                    break;
                case DestinationSnapshot s:
                    w.Write(s.Records.Count);
                    foreach (var r in s.Records)
                    {
                        w.Write(r.Mid); w.Write(r.Rid); w.Write(r.Attempts); w.Write(r.NextAttemptUtc.UtcTicks); w.Write(r.LastError);
                        w.Write(r.Warnings);
                    }
                    var rate = s.Rate ?? [];
                    w.Write(rate.Count);
                    foreach (var b in rate)
                    {
                        w.Write(b.StartUtc.UtcTicks); w.Write(b.Count); w.Write(b.Width.Ticks);
                    }
                    w.Write(s.Suspended is not null);
                    if (s.Suspended is { } su)
                    {
                        w.Write(su.Since.UtcTicks); w.Write(su.By);
                    }
                    break;
                case RecipientsCounted c:
                    w.Write(c.Count); w.Write(c.AtUtc.UtcTicks);
                    break;
                case EnqueueRecipients e:
                    w.Write(e.Domain.Name); WriteMessage(w, e.Message);
                    w.Write(e.Recipients.Count);
                    foreach (var r in e.Recipients)
                    {
                        w.Write(r.Rid); w.Write(r.Address); w.Write((int)r.Notify); WriteNullable(w, r.OriginalRecipient);
                    }
                    break;
                case DeliverNow or GetDestinationStatus or Resume: // the destination alone
                    w.Write(((IWithDestination)obj).Domain.Name);
                    break;
                case DestinationStatus st:
                    w.Write(st.Domain.Name); w.Write(st.QueuedRecipients); w.Write(st.DeferredRecipients); w.Write(st.ActiveConnections);
                    w.Write(st.MaxConnections); w.Write(st.NextAttempt?.UtcTicks ?? -1); WriteNullable(w, st.LastError);
                    w.Write(st.SuspendedSince?.UtcTicks ?? -1); WriteNullable(w, st.SuspendedBy);
                    w.Write(st.Throttle is not null);
                    if (st.Throttle is { } t)
                    {
                        w.Write(t.Rule); w.Write(t.Reply); w.Write(t.Since.UtcTicks); w.Write(t.HoldUntil.UtcTicks);
                        w.Write(t.Connections ?? -1); w.Write(t.Rate ?? -1); w.Write(t.Ramping);
                    }
                    break;
                case SuspendDelivery sd:
                    w.Write(sd.Domain.Name); w.Write(sd.By);
                    break;
                case ResumeDelivery rd:
                    w.Write(rd.Domain.Name); w.Write(rd.By);
                    break;
                case RemoveQueued rq:
                    w.Write(rq.Domain.Name); w.Write(rq.Mid ?? -1); w.Write(rq.Bounce); w.Write(rq.By);
                    break;
                case QueueRemoved qr:
                    w.Write(qr.Domain.Name); w.Write(qr.Messages); w.Write(qr.Recipients); w.Write(qr.InFlight);
                    break;
                case DestinationSuspended es:
                    w.Write(es.AtUtc.UtcTicks); w.Write(es.By);
                    break;
                case DestinationResumed er:
                    w.Write(er.AtUtc.UtcTicks); w.Write(er.By);
                    break;
                default:
                    throw new SerializationException($"DestinationSerializer cannot serialize {obj.GetType()}");
            }
        }
        return ms.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        using var r = new BinaryReader(new MemoryStream(bytes));
        switch (manifest)
        {
            case DeferredV1Manifest:
                return new RecipientsDeferred(r.ReadInt64(), ReadInts(r), r.ReadInt32(), Utc(r.ReadInt64()), r.ReadString());
            case DeferredManifest:
                return ReadDeferred(r, null);
            case DeferralBatchManifest:
            {
                var n = r.ReadInt32();
                var items = new RecipientsDeferred[n];
                // One string per distinct reason: a batch usually repeats the same one a thousand times.
                var reasons = new Dictionary<string, string>();
                for (var i = 0; i < n; i++) items[i] = ReadDeferred(r, reasons);
                return new DeferralBatch(items);
            }
            case FinishedManifest:
                return new RecipientsFinished(r.ReadInt64(), ReadInts(r));
            case SnapshotV1Manifest or SnapshotV2Manifest or SnapshotManifest:
            {
                var n = r.ReadInt32();
                var list = new RetryRecord[n];
                for (var i = 0; i < n; i++)
                    list[i] = new RetryRecord(r.ReadInt64(), r.ReadInt32(), r.ReadInt32(), Utc(r.ReadInt64()), r.ReadString(),
                        manifest == SnapshotV1Manifest ? 0 : r.ReadInt32());
                if (manifest == SnapshotV1Manifest) return new DestinationSnapshot(list);
                var m = r.ReadInt32();
                var rate = new RateCount[m];
                for (var i = 0; i < m; i++) rate[i] = new RateCount(Utc(r.ReadInt64()), r.ReadInt64(), TimeSpan.FromTicks(r.ReadInt64()));
                var suspended = manifest == SnapshotManifest && r.ReadBoolean() ? new Suspension(Utc(r.ReadInt64()), r.ReadString()) : null;
                return new DestinationSnapshot(list, m == 0 ? null : rate, suspended);
            }
            case CountedManifest:
                return new RecipientsCounted(r.ReadInt64(), Utc(r.ReadInt64()));
            case EnqueueManifest:
            {
                var domain = ReadDomain(r);
                var msg = ReadMessage(r);
                var n = r.ReadInt32();
                var rcpts = new RecipientRef[n];
                for (var i = 0; i < n; i++)
                    rcpts[i] = new RecipientRef(r.ReadInt32(), r.ReadString(), (DsnNotify)r.ReadInt32(), ReadNullable(r));
                return new EnqueueRecipients(domain, msg, rcpts);
            }
            case DeliverNowManifest:
                return new DeliverNow(ReadDomain(r));
            case StatusQueryManifest:
                return new GetDestinationStatus(ReadDomain(r));
            case ResumeManifest:
                return new Resume(ReadDomain(r));
            case StatusV1Manifest or StatusV2Manifest or StatusManifest:
            {
                var domain = ReadDomain(r);
                int q = r.ReadInt32(), d = r.ReadInt32(), a = r.ReadInt32(), m = r.ReadInt32();
                var next = r.ReadInt64();
                var status = new DestinationStatus(domain, q, d, a, m, next < 0 ? null : Utc(next), ReadNullable(r));
                if (manifest == StatusV1Manifest) return status;
                var since = r.ReadInt64();
                status = status with { SuspendedSince = since < 0 ? null : Utc(since), SuspendedBy = ReadNullable(r) };
                if (manifest == StatusV2Manifest || !r.ReadBoolean()) return status;
                var (rule, reply, from, until) = (r.ReadString(), r.ReadString(), Utc(r.ReadInt64()), Utc(r.ReadInt64()));
                var (connections, rate) = (r.ReadInt32(), r.ReadDouble());
                return status with
                {
                    Throttle = new DestinationThrottle(rule, reply, from, until, connections < 0 ? null : connections, rate < 0 ? null : rate, r.ReadBoolean()),
                };
            }
            case SuspendManifest:
                return new SuspendDelivery(ReadDomain(r), r.ReadString());
            case ResumeDeliveryManifest:
                return new ResumeDelivery(ReadDomain(r), r.ReadString());
            case RemoveQueuedManifest:
            {
                var domain = ReadDomain(r);
                var mid = r.ReadInt64();
                return new RemoveQueued(domain, mid < 0 ? null : mid, r.ReadBoolean(), r.ReadString());
            }
            case QueueRemovedManifest:
                return new QueueRemoved(ReadDomain(r), r.ReadInt32(), r.ReadInt32(), r.ReadInt32());
            case SuspendedManifest:
                return new DestinationSuspended(Utc(r.ReadInt64()), r.ReadString());
            case ResumedManifest:
                return new DestinationResumed(Utc(r.ReadInt64()), r.ReadString());
            default:
                throw new SerializationException($"DestinationSerializer: unknown manifest '{manifest}'");
        }
    }

    private static void WriteDeferred(BinaryWriter w, RecipientsDeferred d)
    {
        w.Write(d.Mid); WriteInts(w, d.Rids); w.Write(d.Attempts); w.Write(d.NextAttemptUtc.UtcTicks); w.Write(d.Reason);
        w.Write(d.Warnings);
    }

    private static RecipientsDeferred ReadDeferred(BinaryReader r, Dictionary<string, string>? reasons)
    {
        long mid = r.ReadInt64();
        var rids = ReadInts(r);
        int attempts = r.ReadInt32();
        var next = Utc(r.ReadInt64());
        var reason = r.ReadString();
        if (reasons is not null)
        {
            if (reasons.TryGetValue(reason, out var same)) reason = same;
            else reasons[reason] = reason;
        }
        return new RecipientsDeferred(mid, rids, attempts, next, reason, r.ReadInt32());
    }

    private static void WriteMessage(BinaryWriter w, MessageRef m)
    {
        w.Write(m.Mid); w.Write(m.ReversePath); w.Write(m.ReceivedAt.UtcTicks); w.Write(m.BodyLength);
        WriteNullable(w, m.EnvId); w.Write((int)m.Ret); w.Write(m.EightBitMime); w.Write(m.SmtpUtf8);
    }

    private static MessageRef ReadMessage(BinaryReader r) =>
        new(r.ReadInt64(), r.ReadString(), Utc(r.ReadInt64()), r.ReadInt64(), ReadNullable(r), (DsnRet)r.ReadInt32(),
            r.ReadBoolean(), r.ReadBoolean());

    private static DateTimeOffset Utc(long ticks) => new(ticks, TimeSpan.Zero);

    private static void WriteInts(BinaryWriter w, IReadOnlyList<int> values)
    {
        w.Write(values.Count);
        foreach (var v in values) w.Write(v);
    }

    private static int[] ReadInts(BinaryReader r)
    {
        var n = r.ReadInt32();
        var a = new int[n];
        for (var i = 0; i < n; i++) a[i] = r.ReadInt32();
        return a;
    }

    private static void WriteNullable(BinaryWriter w, string? s)
    {
        w.Write(s is not null);
        if (s is not null) w.Write(s);
    }

    // Written as the normalised name (the same string the previous versions wrote).
    private static DestinationDomain ReadDomain(BinaryReader r) => DestinationDomain.Parse(r.ReadString());

    private static string? ReadNullable(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;
}
