using Akka.Actor;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Smtp.Replies;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>
/// One outbound SMTP connection of a destination (child of <see cref="DestinationActor"/>). A thin shell: every
/// network call runs on the transport as a Task whose result comes back as a message (PipeTo), so the actor never
/// blocks a thread. It takes one job at a time from its parent, which owns the limits.
/// </summary>
public sealed class ConnectionActor : UntypedActor
{
    private readonly SessionRequest _request;
    private readonly IDeliveryTransport _transport;
    private readonly CancellationTokenSource _cts = new();
    private IDeliverySession? _session;
    private DeliveryJob? _current;

    public ConnectionActor(SessionRequest request, IDeliveryTransport transport)
    {
        _request = request;
        _transport = transport;
    }

    public static Props Props(SessionRequest request, IDeliveryTransport transport) =>
        Akka.Actor.Props.Create(() => new ConnectionActor(request, transport));

    // Messages between the destination and its connections (local only, never serialized).
    /// <param name="Sent">Messages the connection already carried (MX roll-up: for another destination).</param>
    public sealed record Ready(long Dcid, string Peer, int Sent = 0);
    /// <param name="Reply">The receiver's refusal (banner, EHLO) when there was one: throttling rules match it.</param>
    public sealed record OpenFailed(long Dcid, RecipientOutcomeKind Kind, string Detail, string Status, SmtpReply? Reply = null);
    public sealed record Done(long Dcid, DeliveryJob Job, JobResult Result);
    /// <param name="Park">Idle: the transport may keep it for other destinations (MX roll-up) instead of QUIT.</param>
    public sealed record Close(bool Park = false);
    private sealed record Opened(IDeliverySession Session);
    private sealed record Failed(Exception Error);
    private sealed record Closed;

    protected override void PreStart()
    {
        var self = Self;
        _transport.OpenAsync(_request, _cts.Token).PipeTo(self,
            success: s => new Opened(s),
            failure: ex => new Failed(ex));
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Opened o:
                _session = o.Session;
                Context.Parent.Tell(new Ready(_request.Dcid, o.Session.Peer, o.Session.MessagesSent));
                break;
            case Failed f when _session is null:
                var (kind, detail, status) = f.Error switch
                {
                    DeliveryOpenException d => (d.Kind, d.Detail, d.Status),
                    OperationCanceledException => (RecipientOutcomeKind.Transient, "connection timed out", "4.4.2"),
                    _ => (RecipientOutcomeKind.Transient, f.Error.Message, "4.4.0"),
                };
                Context.Parent.Tell(new OpenFailed(_request.Dcid, kind, detail, status, (f.Error as DeliveryOpenException)?.Reply));
                Context.Stop(Self);
                break;
            case DeliveryJob job when _session is not null:
                _current = job;
                var self = Self;
                _session.SendAsync(job, _cts.Token).PipeTo(self, success: r => r, failure: ex => new Failed(ex));
                break;
            case JobResult result when _current is not null:
                var done = new Done(_request.Dcid, _current, result);
                _current = null;
                Context.Parent.Tell(done);
                if (!result.ConnectionUsable) Context.Stop(Self);
                break;
            case Failed f when _current is not null:
                // The transport threw mid-transaction: every recipient of the job is transient, connection gone.
                var job2 = _current;
                _current = null;
                var outcomes = job2.Recipients.Select(r => new RecipientOutcome(r.Rid, RecipientOutcomeKind.Transient,
                    SmtpReplyFormatter.NoReply("4.4.2", f.Error.Message, "Connection error"), "4.4.2")).ToArray();
                Context.Parent.Tell(new Done(_request.Dcid, job2, new JobResult(job2.Message.Mid, outcomes, false)));
                Context.Stop(Self);
                break;
            case Close c when _session is not null:
                var s = _session;
                _session = null;
                var me = Self;
                (c.Park ? s.ParkAsync(_cts.Token) : s.CloseAsync(_cts.Token)).PipeTo(me, success: () => new Closed(), failure: _ => new Closed());
                break;
            case Close:
                Context.Stop(Self);
                break;
            case Closed:
                Context.Stop(Self);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    protected override void PostStop()
    {
        _cts.Cancel();
        var s = _session;
        _session = null;
        if (s is not null) _ = s.DisposeAsync().AsTask();
        _cts.Dispose();
    }
}
