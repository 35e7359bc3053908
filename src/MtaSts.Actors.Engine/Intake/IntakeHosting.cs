using Akka.Hosting;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Engine.Destination;
using MtaSts.Actors.Logging;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Engine.Intake;

public static class IntakeHosting
{
    /// <summary>The intake feature's dispatcher onto the destination region (add it after
    /// <see cref="DestinationHosting.AddDestinations"/>). <paramref name="started"/> gets it while the actor system
    /// starts, before the cluster join: what spools mail of its own (bounces, TLS-RPT reports) is attached before any
    /// destination entity can run here.</summary>
    /// <param name="pending">This node's index of the spool; null in a cluster (each owner indexes its own mail).</param>
    public static AkkaConfigurationBuilder AddIntake(this AkkaConfigurationBuilder builder, PendingIndex? pending, MailLog log,
        Action<Dispatcher> started) =>
        builder.WithActors((_, registry) => started(new Dispatcher(registry.Get<DestinationRegion>(), pending, (mid, rcpt, why) =>
            log.Critical("invalid_destination", $"MID {mid} RID {rcpt.Rid} To: <{rcpt.Address}> not dispatched: {why}", ("mid", mid), ("rid", rcpt.Rid)))));

    /// <summary>Starts the SMTP listener (the gateway's last start-up step): it answers 250 only after the spool's
    /// fsync, then hands the message to <paramref name="dispatcher"/>.</summary>
    /// <exception cref="ListenerBindException">An endpoint is taken.</exception>
    public static async Task<SmtpListener> StartListenerAsync(SmtpListenerOptions options, ISpool spool, Dispatcher dispatcher,
        IdSequence mids, IdSequence icids, MailLog log, Stack<Func<ValueTask>> undo, CancellationToken ct)
    {
        var listener = new SmtpListener(options, spool, (msg, _) =>
        {
            dispatcher.Dispatch(msg);
            return ValueTask.CompletedTask;
        }, mids, icids, log);
        undo.Push(listener.DisposeAsync);
        await listener.StartAsync(ct).ConfigureAwait(false);
        return listener;
    }
}
