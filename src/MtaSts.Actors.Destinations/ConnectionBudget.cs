namespace MtaSts.Actors.Destinations;

/// <summary>What one connection limit counts against: the destination, optionally narrowed to one MX IP
/// (LimitType = each MX IP) and/or one source (LimitScope = per virtual gateway or per gateway host name).</summary>
public readonly record struct LimitKey(string? MxIp, string? Source)
{
    public static LimitKey Domain { get; } = new(null, null);

    /// <summary>The key the profile's limit type and scope make of a concrete connection.</summary>
    public static LimitKey For(DestinationProfile profile, string? mxIp, string? sourceAddress, string? gatewayHostname) => new(
        profile.LimitType == LimitType.PerMxIp ? mxIp : null,
        profile.LimitScope switch
        {
            LimitScope.PerVirtualGateway => sourceAddress,
            LimitScope.PerGatewayHostname => gatewayHostname,
            _ => null,
        });
}

/// <summary>
/// Open-connection bookkeeping for one destination (vendor "concurrent connections": 1..1000 per domain or per MX IP,
/// system wide or per source). Mutable; owned by one actor.
/// </summary>
public sealed class ConnectionBudget
{
    private readonly Dictionary<LimitKey, int> _inUse = new();

    public int MaxConcurrent { get; private set; }

    /// <summary>Connections open over every key.</summary>
    public int TotalInUse { get; private set; }

    public ConnectionBudget(int maxConcurrent) => MaxConcurrent = Check(maxConcurrent);

    /// <summary>How many connections may open now: <c>max − inUse</c>, never negative (after a reload lowers the
    /// limit, open connections are left to finish; no new ones open until the count drops below the new limit).</summary>
    public static int Available(int inUse, int max) => Math.Max(0, max - Math.Max(0, inUse));

    public int InUse(LimitKey key) => _inUse.GetValueOrDefault(key);

    public int Available(LimitKey key) => Available(InUse(key), MaxConcurrent);

    /// <summary>How many of <paramref name="wanted"/> connections may open now under <paramref name="key"/>.</summary>
    public int Grant(LimitKey key, int wanted) => Math.Min(Math.Max(0, wanted), Available(key));

    public bool TryAcquire(LimitKey key)
    {
        var n = InUse(key);
        if (n >= MaxConcurrent) return false;
        _inUse[key] = n + 1;
        TotalInUse++;
        return true;
    }

    /// <summary>Returns false (and changes nothing) when no connection is open under the key: a double release.</summary>
    public bool Release(LimitKey key)
    {
        var n = InUse(key);
        if (n == 0) return false;
        if (n == 1) _inUse.Remove(key); else _inUse[key] = n - 1;
        TotalInUse--;
        return true;
    }

    /// <summary>Applies a reloaded limit; connections already open are kept.</summary>
    public void SetMax(int maxConcurrent) => MaxConcurrent = Check(maxConcurrent);

    /// <summary>Forget all counts (vendor <c>delivernow</c> resets the destconfig counters; also after a crash of all children).</summary>
    public void Reset()
    {
        _inUse.Clear();
        TotalInUse = 0;
    }

    private static int Check(int max)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, DestinationProfile.MinConcurrentConnections);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(max, DestinationProfile.MaxConcurrentConnectionsLimit);
        return max;
    }
}

/// <summary>Messages sent over one connection (vendor "maximum messages per connection": after that many, QUIT and
/// open a new connection). A failed transaction (4xx/5xx after MAIL) still counts: the vendor counts messages handled.</summary>
public sealed class ConnectionMessageCounter(int maxMessages)
{
    public int Max { get; } = maxMessages >= 1 ? maxMessages : throw new ArgumentOutOfRangeException(nameof(maxMessages));

    public int Sent { get; private set; }

    public int Remaining => Math.Max(0, Max - Sent);

    public bool CanSendAnother => Sent < Max;

    /// <summary>Counts one message; false if the connection had already reached its maximum (nothing counted).</summary>
    public bool TryCount()
    {
        if (Sent >= Max) return false;
        Sent++;
        return true;
    }
}
