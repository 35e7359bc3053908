using System.Collections.Concurrent;

namespace MtaSts.Actors.Engine.Delivery;

/// <summary>Fire-and-forget tasks that must still complete before shutdown (DSN spooling, spool "done" records): a
/// graceful stop waits for them before the spool closes, so a delivered message is not re-sent after a restart.</summary>
public sealed class BackgroundWork
{
    private readonly ConcurrentDictionary<Task, byte> _running = new();

    public void Track(Task task)
    {
        _running[task] = 0;
        task.ContinueWith(t => _running.TryRemove(t, out _), TaskScheduler.Default);
    }

    private int _deliveries;
    private volatile bool _draining;

    /// <summary>Set by a graceful stop: destinations hand out no new transactions and open no connections, so that
    /// the transactions in flight can report their outcome before the actors stop (an outcome lost there means the
    /// message is sent again after the restart).</summary>
    public bool Draining => _draining;

    public void BeginDrain() => _draining = true;

    /// <summary>SMTP transactions handed to connections and not yet reported back.</summary>
    public int DeliveriesInFlight => Volatile.Read(ref _deliveries);

    public void DeliveryStarted() => Interlocked.Increment(ref _deliveries);

    public void DeliveryEnded() => Interlocked.Decrement(ref _deliveries);

    /// <summary>Waits until no transaction is in flight, or the timeout passed (returns false then).</summary>
    public async Task<bool> WhenDeliveriesDoneAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DeliveriesInFlight > 0)
        {
            if (DateTime.UtcNow >= deadline) return false;
            await Task.Delay(20).ConfigureAwait(false);
        }
        return true;
    }

    /// <summary>Waits until every tracked task has finished, or the timeout passed (returns false then).</summary>
    public async Task<bool> WhenIdleAsync(TimeSpan timeout)
    {
        var all = Task.WhenAll(_running.Keys);
        return await Task.WhenAny(all, Task.Delay(timeout)).ConfigureAwait(false) == all;
    }
}
