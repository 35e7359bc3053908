using System.Text;
using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Spool.Tests;

public abstract class SpoolTestBase : IDisposable
{
    protected string Dir { get; } = Path.Combine(Path.GetTempPath(), "spool-tests-" + Guid.NewGuid().ToString("N"));

    protected SegmentSpool Open(long segmentSize = 64L * 1024 * 1024, bool preallocate = true) =>
        new(preallocate ? new SegmentSpoolOptions(Dir, SegmentSize: segmentSize) : new SegmentSpoolOptions(Dir, SegmentSize: segmentSize, PreallocateBytes: 0));

    protected static Envelope Env(int recipients = 1, string from = "s@example.org") =>
        new(from,
            Enumerable.Range(0, recipients).Select(i => new Recipient(i, $"r{i}@example.com")).ToArray(),
            new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.FromHours(1)),
            Icid: 7, ClientHelo: "client.example.org", ClientAddress: "127.0.0.1");

    protected static byte[] Body(long mid, int size = 100)
    {
        var b = new byte[size];
        var tag = Encoding.ASCII.GetBytes($"MID {mid}:");
        for (int i = 0; i < size; i++) b[i] = i < tag.Length ? tag[i] : (byte)('a' + (mid + i) % 26);
        return b;
    }

    protected string[] SegmentFiles() => Directory.GetFiles(Dir, "seg-*.log").Order().ToArray();

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        GC.SuppressFinalize(this);
    }
}
