namespace MtaSts.Actors.Smtp.Tests.Intake.Limits;

/// <summary>A clock that moves only when told; both the wall clock and the monotonic timestamp follow it.</summary>
public sealed class TestClock : TimeProvider
{
    private long _ticks = new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero).UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
