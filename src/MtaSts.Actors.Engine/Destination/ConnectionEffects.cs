using System.Diagnostics;
using Akka.Actor;
using MtaSts.Actors.Engine.Delivery;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Engine.Destination;

/// <summary>Runs the <see cref="ConnectionPlanner"/>'s effects for a destination actor: its connection children
/// (named <c>c{DCID}</c> and watched, so that one that stops is re-planned), its timers and delivery tracking. The
/// recipient counts are returned for the actor to journal.</summary>
public sealed class ConnectionEffects(IActorContext context, Func<ITimerScheduler> timers, BackgroundWork work, Func<long, Props> connection,
    MailLog log)
{
    /// <summary>Timer message: re-plan (the next retry is due, or a limit window has room again).</summary>
    public sealed record Wake;
    /// <summary>Timer message: close the connections idle for longer than the profile allows.</summary>
    public sealed record IdleCheck;

    private readonly Dictionary<long, IActorRef> _children = new();
    private readonly WakeDeadline _wake = new();

    public IReadOnlyList<RecipientsCounted> Run(IReadOnlyList<ConnectionEffect> effects)
    {
        var counted = new List<RecipientsCounted>();
        TimeSpan? wake = null;
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case OpenConnection o: _children[o.Dcid] = context.Watch(context.ActorOf(connection(o.Dcid), "c" + o.Dcid)); break;
                case SendJob s:
                    work.DeliveryStarted();
                    _children[s.Dcid].Tell(s.Job);
                    break;
                case CloseConnection c: _children[c.Dcid].Tell(new ConnectionActor.Close(c.Park)); break;
                case JournalCount j: counted.Add(j.Counted); break;
                case JobEnded: work.DeliveryEnded(); break;
                case WakeIn w: wake = wake is { } earlier && earlier < w.Delay ? earlier : w.Delay; break; // the earliest reason wins
                case LogConnectionEvent { Line: var l, Debug: var debug }:
                    if (debug) log.Debug(l.Event, l.Text, l.Fields);
                    else log.Info(l.Event, l.Text, l.Fields);
                    break;
                case IdleCheckIn i: timers().StartSingleTimer("idle", new IdleCheck(), i.Delay); break;
            }
        }
        if (wake is { } delay && _wake.Arm(Stopwatch.GetElapsedTime(Started), delay)) timers().StartSingleTimer("wake", new Wake(), delay);
        return counted;
    }

    /// <summary>The actor received <see cref="Wake"/>: the next wake arms the timer again.</summary>
    public void WakeFired() => _wake.Fired();

    private static readonly long Started = Stopwatch.GetTimestamp();

    /// <summary>True (with its DCID) when <paramref name="child"/> is one of these connections; it is forgotten.</summary>
    public bool Stopped(IActorRef child, out long dcid) => long.TryParse(child.Path.Name.AsSpan(1), out dcid) && _children.Remove(dcid);
}
