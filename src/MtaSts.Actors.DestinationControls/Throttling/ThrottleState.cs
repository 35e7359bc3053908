namespace MtaSts.Actors.DestinationControls.Throttling;

/// <summary>
/// A destination's throttle while a rule holds it: the lowered limits, until when they hold, and the level they ramp
/// back to. <see cref="Connections"/>: null = not limited, 0 = suspended. <see cref="Rate"/>: messages per minute, null
/// = not limited. <see cref="NextStep"/> is null during the hold and the time of the next ramp step after it.
/// </summary>
public sealed record ThrottleLevel(string Rule, string Reply, DateTimeOffset Since, DateTimeOffset HoldUntil, TimeSpan RampStep,
    int? Connections, int ConnectionsBefore, double? Rate, double RateBefore, DateTimeOffset? NextStep, DateTimeOffset LastFired)
{
    public bool Suspended => Connections == 0;
    public bool Ramping => NextStep is not null;
    /// <summary>When the level changes next (end of the hold or the next ramp step).</summary>
    public DateTimeOffset NextChange => NextStep ?? HoldUntil;
}

public enum ThrottleChangeKind { Fired, Expired, Ramped, Ended }

/// <summary>A change of the throttle (the level before and after; <see cref="After"/> null = back to the profile).</summary>
public sealed record ThrottleTransition(ThrottleChangeKind Kind, ThrottleLevel? Before, ThrottleLevel? After, TimeSpan? For = null)
{
    public string Event => Kind switch
    {
        ThrottleChangeKind.Fired => "destination_throttled",
        ThrottleChangeKind.Expired => "destination_throttle_expired",
        ThrottleChangeKind.Ramped => "destination_throttle_ramp",
        _ => "destination_throttle_ended",
    };

    /// <summary>The operator log line, e.g. <c>Destination gmail.com throttled by rule gmail-rate-limited: 421 4.7.28 …;
    /// connections 10 -> 5 for 10m</c>.</summary>
    public string Text(string domain)
    {
        var rule = (After ?? Before)!.Rule;
        switch (Kind)
        {
            case ThrottleChangeKind.Fired:
                var a = After!;
                var parts = new List<string>();
                if (a.Suspended) parts.Add($"suspended for {ThrottleText.Duration(For!.Value)}");
                else if (a.Connections is { } c && c != Before?.Connections)
                    parts.Add($"connections {Before?.Connections ?? a.ConnectionsBefore} -> {c} for {ThrottleText.Duration(For!.Value)}");
                if (a.Rate is { } r && r != Before?.Rate)
                    parts.Add($"rate {ThrottleText.Number(Before?.Rate ?? a.RateBefore)} -> {ThrottleText.Number(r)} messages/min for {ThrottleText.Duration(For!.Value)}");
                if (parts.Count == 0) parts.Add($"limits held until {a.HoldUntil:HH:mm:ss}Z");
                return $"Destination {domain} throttled by rule {rule}: {a.Reply}; {string.Join(", ", parts)}";
            case ThrottleChangeKind.Expired:
                return $"Destination {domain} throttle by rule {rule} expired: ramping back, {Limits(After!)}, every {ThrottleText.Duration(After!.RampStep)}";
            case ThrottleChangeKind.Ramped:
                return $"Destination {domain} throttle by rule {rule} ramping: {Limits(After!)}";
            default:
                return $"Destination {domain} throttle by rule {rule} ended: back to the profile limits";
        }
    }

    private static string Limits(ThrottleLevel l) => string.Join(", ", new[]
    {
        l.Connections is { } c ? $"connections {c} (of {l.ConnectionsBefore})" : null,
        l.Rate is { } r ? $"rate {ThrottleText.Number(r)} messages/min" : null,
    }.Where(s => s is not null));
}

/// <summary>
/// The reply-driven throttle of one destination, without Akka or timers: <see cref="Decide"/> says what a matching reply
/// or the passing of time changes, <see cref="Apply"/> makes the change. Also paces transactions under a rate limit and
/// counts those of the last minute (the level a rate factor applies to). Not persisted: a restart starts unthrottled.
/// </summary>
public sealed class ThrottleState
{
    /// <summary>Floor of a lowered rate (messages per minute): a factor never stops a destination.</summary>
    public const double MinRate = 1;
    private static readonly TimeSpan RateTightenAfter = TimeSpan.FromMinutes(1);

    private readonly int[] _sent = new int[60]; // transactions handed out per second of the last minute
    private long _sentSecond = long.MinValue;
    private DateTimeOffset _nextSend = DateTimeOffset.MinValue;

    public ThrottleLevel? Level { get; private set; }

    /// <summary>The connection limit while throttled (0 = suspended); null = the profile's.</summary>
    public int? ConnectionLimit => Level?.Connections;

    /// <summary>A reply matched <paramref name="rule"/>: the new level (null for action none).</summary>
    /// <param name="inUse">Connections of the destination now (opening or open).</param>
    /// <param name="profileMax">The profile's connection limit (the level ramps back to at most this).</param>
    public ThrottleTransition? Decide(ThrottleRule rule, string reply, int inUse, int profileMax, DateTimeOffset now)
    {
        if (rule.Action == ThrottleAction.None) return null;
        var current = Level;
        var before = current?.ConnectionsBefore ?? Math.Clamp(inUse, 1, Math.Max(1, profileMax));
        var rateBefore = current?.RateBefore ?? SentLastMinute(now);
        var connections = current?.Connections;
        var rate = current?.Rate;
        switch (rule.Action)
        {
            case ThrottleAction.Suspend:
                connections = 0;
                break;
            case ThrottleAction.LimitConnections when connections != 0: // a suspension is not loosened by a limit
                var level = connections ?? before;
                // Replies from connections opened before the cut do not tighten again: only a complaint at the lowered level does.
                if (rule.Connections is { } n) connections = Math.Min(level, n);
                else if (current?.Connections is null || inUse <= level) connections = Math.Min(level, Math.Max(1, (int)Math.Floor(level * rule.Factor!.Value)));
                break;
            case ThrottleAction.LimitRate:
                if (rule.Rate is { } r) rate = Math.Min(rate ?? r, r);
                else if (current?.Rate is null || now - current.LastFired >= RateTightenAfter)
                    rate = Math.Max(MinRate, (rate ?? Math.Max(rateBefore, MinRate)) * rule.Factor!.Value);
                break;
        }
        var hold = now + rule.Duration;
        var after = new ThrottleLevel(rule.Name, reply, current?.Since ?? now, current is null || hold > current.HoldUntil ? hold : current.HoldUntil,
            rule.RampStep, connections, before, rate, rateBefore, null, now);
        return new ThrottleTransition(ThrottleChangeKind.Fired, current, after, rule.Duration);
    }

    /// <summary>The passing of time: the end of the hold, then ramp steps (one more connection, twice the rate) until the
    /// level before the rule fired is reached — then the throttle ends. Late wakes catch up every step that was due.</summary>
    public IReadOnlyList<ThrottleTransition> Decide(DateTimeOffset now)
    {
        var changes = new List<ThrottleTransition>();
        var level = Level;
        while (level is not null && now >= level.NextChange)
        {
            var kind = level.Ramping ? ThrottleChangeKind.Ramped : ThrottleChangeKind.Expired;
            var connections = level.Connections is { } c && c + 1 < level.ConnectionsBefore ? c + 1 : (int?)null;
            var rate = level.Rate is { } r && r * 2 < level.RateBefore ? r * 2 : (double?)null;
            var next = connections is null && rate is null ? null
                : level with { Connections = connections, Rate = rate, NextStep = level.NextChange + level.RampStep };
            changes.Add(new ThrottleTransition(next is null ? ThrottleChangeKind.Ended : kind, level, next));
            level = next;
        }
        return changes;
    }

    public void Apply(ThrottleTransition change) => Level = change.After;

    /// <summary>Under a rate limit: how long until the next transaction may start (null: now).</summary>
    public TimeSpan? RateWait(DateTimeOffset now) => Level?.Rate is not null && _nextSend > now ? _nextSend - now : null;

    /// <summary>A transaction was handed to a connection.</summary>
    public void NoteSent(DateTimeOffset now)
    {
        Advance(now);
        _sent[(int)(_sentSecond % 60)]++;
        if (Level?.Rate is { } rate) _nextSend = now + TimeSpan.FromMinutes(1 / rate);
    }

    /// <summary>Transactions handed out in the last minute.</summary>
    public double SentLastMinute(DateTimeOffset now)
    {
        Advance(now);
        return _sent.Sum();
    }

    private void Advance(DateTimeOffset now)
    {
        var second = now.ToUnixTimeSeconds();
        if (_sentSecond != long.MinValue)
            for (var s = _sentSecond + 1; s <= second && s <= _sentSecond + 60; s++) _sent[(int)(s % 60)] = 0;
        if (second > _sentSecond) _sentSecond = second;
    }
}
