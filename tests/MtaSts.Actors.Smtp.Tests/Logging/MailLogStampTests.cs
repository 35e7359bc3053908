using System.Globalization;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Smtp.Tests.Logging;

/// <summary>The text line's "date level" prefix is cached per second (MailLog.Stamp): every line must still carry its
/// own second, offset and level, whatever order the lines come in.</summary>
public sealed class MailLogStampTests
{
    private static string Expected(DateTimeOffset at, MailLogLevel level, string text) =>
        $"{at.ToString("ddd MMM dd HH:mm:ss yyyy", CultureInfo.InvariantCulture)} {level}: {text}";

    [Fact]
    public void Every_line_has_its_own_second_offset_and_level()
    {
        var t0 = new DateTimeOffset(2026, 11, 23, 9, 0, 59, TimeSpan.Zero);
        var stamps = new[]
        {
            t0, t0.AddMilliseconds(999), t0.AddSeconds(1), t0.AddSeconds(1).AddTicks(1), t0, // back to an earlier second
            t0.ToOffset(TimeSpan.FromHours(2)), t0.ToOffset(TimeSpan.FromHours(2)).AddMilliseconds(10), t0,
            new DateTimeOffset(2026, 12, 31, 23, 59, 59, TimeSpan.Zero), new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero),
            t0.AddDays(-1), t0.AddDays(-1).AddMilliseconds(500),
        };
        var levels = Enum.GetValues<MailLogLevel>();
        for (int i = 0; i < stamps.Length; i++)
        {
            var level = levels[i % levels.Length];
            var e = new MailLogEntry(stamps[i], level, "x", $"MID {i} done", []);
            Assert.Equal(Expected(stamps[i], level, $"MID {i} done"), MailLog.FormatText(e));
        }
    }

    [Fact]
    public void Lines_written_from_many_threads_keep_their_stamps()
    {
        var t0 = new DateTimeOffset(2026, 11, 23, 9, 0, 0, TimeSpan.Zero);
        Parallel.For(0, 4, worker =>
        {
            for (int i = 0; i < 5_000; i++)
            {
                // Threads interleave seconds, so the cache is replaced while others read it.
                var at = t0.AddSeconds((i + worker) % 7).AddMilliseconds(i % 1000);
                var e = new MailLogEntry(at, MailLogLevel.Info, "x", "t", []);
                Assert.Equal(Expected(at, MailLogLevel.Info, "t"), MailLog.FormatText(e));
            }
        });
    }
}
