namespace MtaSts.Actors.Smtp.Intake;

/// <summary>
/// Bytes of message data received by all sessions of a listener and not yet in the spool
/// (<see cref="SmtpListenerOptions.MaxDataInFlight"/>). Sessions reserve in chunks so that the shared counter is
/// touched about once per 64 KiB, not once per line.
/// </summary>
internal sealed class DataBudget(long capacity)
{
    private const long Chunk = 64 * 1024;
    private long _used;

    public long Capacity { get; } = capacity;

    /// <summary>Bytes currently reserved by sessions.</summary>
    public long InFlight => Interlocked.Read(ref _used);

    /// <summary>Whether <paramref name="bytes"/> more would still fit (RFC 1870 §6: a SIZE check at MAIL FROM).</summary>
    public bool CouldFit(long bytes) => InFlight + bytes <= Capacity;

    public Reservation Open() => new(this);

    private bool TryTake(long bytes)
    {
        if (Interlocked.Add(ref _used, bytes) <= Capacity) return true;
        Interlocked.Add(ref _used, -bytes);
        return false;
    }

    private void Give(long bytes) => Interlocked.Add(ref _used, -bytes);

    /// <summary>One message's share; <see cref="Dispose"/> gives it all back.</summary>
    public sealed class Reservation(DataBudget budget) : IDisposable
    {
        private long _reserved;
        private long _used;

        /// <returns>false when the listener-wide budget is exhausted (nothing was taken).</returns>
        public bool TryGrow(long bytes)
        {
            if (_used + bytes > _reserved)
            {
                long more = Math.Max(Chunk, _used + bytes - _reserved);
                if (!budget.TryTake(more)) return false;
                _reserved += more;
            }
            _used += bytes;
            return true;
        }

        public void Dispose()
        {
            if (_reserved > 0) budget.Give(_reserved);
            _reserved = _used = 0;
        }
    }
}
