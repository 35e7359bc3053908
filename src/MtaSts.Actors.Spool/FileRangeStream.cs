using Microsoft.Win32.SafeHandles;

namespace MtaSts.Actors.Spool;

/// <summary>
/// A read-only, seekable view of <c>length</c> bytes at <c>start</c> of a file (a body inside a segment file, a
/// spill file): reads go straight from the file (positional reads, no shared file position) into the caller's
/// buffer, so delivery never holds a whole body in memory. <c>truncated</c> makes the exception for a file that ends
/// early (the range was complete when it was recorded: damage, not end of data).
/// </summary>
internal sealed class FileRangeStream(SafeFileHandle handle, long start, long length, Func<long, Exception> truncated) : Stream
{
    private long _position;

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => length;

    public override long Position
    {
        get => _position;
        set => _position = value is >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    public override int Read(Span<byte> buffer)
    {
        var want = Want(buffer.Length);
        if (want == 0) return 0;
        var n = RandomAccess.Read(handle, buffer[..want], start + _position);
        return Advance(n);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        var want = Want(buffer.Length);
        if (want == 0) return 0;
        var n = await RandomAccess.ReadAsync(handle, buffer[..want], start + _position, ct).ConfigureAwait(false);
        return Advance(n);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
        ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    private int Want(int capacity) => (int)Math.Min(capacity, length - Math.Min(_position, length));

    private int Advance(int n)
    {
        if (n == 0) throw truncated(_position);
        _position += n;
        return n;
    }

    public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => _position + offset,
        SeekOrigin.End => length + offset,
        _ => throw new ArgumentOutOfRangeException(nameof(origin)),
    };

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
