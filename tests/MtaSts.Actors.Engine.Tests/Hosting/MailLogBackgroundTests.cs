using MtaSts.Actors.Logging;
using Xunit;

namespace MtaSts.Actors.Engine.Tests.Hosting;

/// <summary>The operator log's background mode (the gateway's files): order, completeness, Critical and Flush
/// semantics, draining on dispose.</summary>
public sealed class MailLogBackgroundTests
{
    /// <summary>Counts flushes: the point of background mode is one flush per batch, not per line.</summary>
    private sealed class CountingWriter : StringWriter
    {
        public int Flushes;
        public override void Flush() { Interlocked.Increment(ref Flushes); base.Flush(); }
    }

    [Fact]
    public void The_log_file_asks_for_writeback_every_megabyte_and_keeps_every_line()
    {
        // Dirty log pages left to the kernel's 30-second writeback came out in bursts that stalled the spool's fsync.
        var path = Path.Combine(Path.GetTempPath(), "mtasts-writeback-" + Guid.NewGuid().ToString("N") + ".log");
        try
        {
            var stream = LogFile.OpenAppend(path);
            if (!OperatingSystem.IsLinux()) { stream.Dispose(); return; }
            var writeback = Assert.IsType<LogFile.WritebackStream>(stream);
            using (var writer = new StreamWriter(writeback) { AutoFlush = false })
            {
                var line = new string('x', 99);
                for (var i = 0; i < 30_000; i++) // ≈ 3 MB, flushed every 1,000 lines as the log pump does per batch
                {
                    writer.WriteLine(line);
                    if (i % 1000 == 999) writer.Flush();
                }
                writer.Flush();
                Assert.InRange(writeback.Requests, 2, 3);
            }
            Assert.Equal(30_000 * 100, new FileInfo(path).Length);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Lines_from_many_threads_all_arrive_in_per_thread_order_and_text_and_json_agree()
    {
        var text = new CountingWriter();
        var json = new StringWriter();
        var log = new MailLog(text, json, background: true);
        Parallel.For(0, 8, t =>
        {
            for (var i = 0; i < 5000; i++) log.Info("t", $"MID {t} line {i}", ("mid", t));
        });
        Assert.True(log.Flush());
        string[] textLines, jsonLines;
        textLines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        jsonLines = json.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(40_000, textLines.Length);
        Assert.Equal(40_000, jsonLines.Length);
        for (var t = 0; t < 8; t++)
        {
            var seq = textLines.Where(l => l.Contains($"MID {t} line ")).Select(l => int.Parse(l[(l.LastIndexOf(' ') + 1)..].TrimEnd('\r'))).ToList();
            Assert.Equal(Enumerable.Range(0, 5000), seq);
        }
        Assert.True(text.Flushes < 40_000, $"{text.Flushes} flushes for 40,000 lines: not batched");
        log.Dispose();
    }

    [Fact]
    public void A_critical_line_is_in_the_writer_when_Write_returns()
    {
        var text = new StringWriter();
        var log = new MailLog(text, background: true);
        for (var i = 0; i < 1000; i++) log.Info("x", $"line {i}");
        log.Critical("boom", "Critical failure");
        var all = text.ToString();
        Assert.Contains("line 999", all);
        Assert.EndsWith("Critical: Critical failure" + Environment.NewLine, all);
        log.Dispose();
    }

    [Fact]
    public void Dispose_drains_the_queue_and_later_lines_are_written_directly()
    {
        var text = new StringWriter();
        var log = new MailLog(text, background: true);
        for (var i = 0; i < 2000; i++) log.Info("x", $"line {i}");
        log.Dispose();
        Assert.Contains("line 1999", text.ToString());
        log.Info("x", "after dispose"); // the writer is disposed: dropped without an exception
        Assert.True(log.Flush());
    }

    [Fact]
    public void Without_background_every_line_is_written_before_Write_returns()
    {
        var text = new StringWriter();
        var log = new MailLog(text);
        log.Info("x", "at once");
        Assert.Contains("at once", text.ToString());
    }
}
