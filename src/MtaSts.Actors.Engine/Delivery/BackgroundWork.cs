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

    /// <summary>Waits until every tracked task has finished, or the timeout passed (returns false then).</summary>
    public async Task<bool> WhenIdleAsync(TimeSpan timeout)
    {
        var all = Task.WhenAll(_running.Keys);
        return await Task.WhenAny(all, Task.Delay(timeout)).ConfigureAwait(false) == all;
    }
}
