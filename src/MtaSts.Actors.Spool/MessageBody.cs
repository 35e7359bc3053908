using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace MtaSts.Actors.Spool;

/// <summary>
/// A message body handed to <see cref="ISpool.AppendAsync"/>: either bytes in memory, or a spill file that a
/// <see cref="MessageBodyWriter"/> filled while DATA arrived (so that a 48 MB message never sits in memory).
/// Its CRC-32 is known up front, so the spool's single writer only copies bytes.
/// </summary>
/// <remarks>The owner disposes it, and only after the append task has completed: the spool reads the bytes
/// until then.</remarks>
public sealed class MessageBody : IDisposable
{
    private byte[]? _pooled;
    private FileStream? _spill;
    private uint? _crc;

    private MessageBody(ReadOnlyMemory<byte> memory, byte[]? pooled, FileStream? spill, long length, uint? crc)
    {
        Memory = memory;
        _pooled = pooled;
        _spill = spill;
        Length = length;
        _crc = crc;
    }

    /// <summary>A body already in memory (DSNs, tests). The bytes are not copied.</summary>
    public static MessageBody FromBytes(ReadOnlyMemory<byte> bytes) => new(bytes, null, null, bytes.Length, null);

    public static implicit operator MessageBody(ReadOnlyMemory<byte> bytes) => FromBytes(bytes);
    public static implicit operator MessageBody(byte[] bytes) => FromBytes(bytes);

    internal static MessageBody FromPooled(byte[] buffer, int length, uint crc) => new(buffer.AsMemory(0, length), buffer, null, length, crc);

    internal static MessageBody FromSpill(FileStream spill, long length, uint crc) => new(default, null, spill, length, crc);

    /// <summary>Body length in octets.</summary>
    public long Length { get; }

    /// <summary>The bytes when the body is in memory; empty when it is in a spill file (<see cref="IsSpilled"/>).</summary>
    public ReadOnlyMemory<byte> Memory { get; }

    /// <summary>True when the bytes are in a spill file rather than in memory.</summary>
    public bool IsSpilled => _spill is not null;

    /// <summary>CRC-32 of the body bytes (computed while they were written, or on first use for <see cref="FromBytes"/>).</summary>
    public uint Crc => _crc ??= Crc32.Compute(Memory.Span);

    /// <summary>Copies the body to <paramref name="destination"/> in chunks (bounded memory whatever its size).</summary>
    public void CopyTo(Stream destination)
    {
        if (_spill is null)
        {
            destination.Write(Memory.Span);
            return;
        }
        var handle = _spill.SafeFileHandle;
        var chunk = ArrayPool<byte>.Shared.Rent(256 * 1024);
        try
        {
            long offset = 0;
            while (offset < Length)
            {
                int n = RandomAccess.Read(handle, chunk.AsSpan(0, (int)Math.Min(chunk.Length, Length - offset)), offset);
                if (n == 0) throw new IOException($"spill file ended at {offset} of {Length} bytes");
                destination.Write(chunk, 0, n);
                offset += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <summary>A read-only, seekable stream over the body from its start, for stores that pull bytes (a database
    /// parameter). Each call returns an independent stream; a spilled body is read from its file in place (positional
    /// reads, so several readers and <see cref="CopyTo"/> do not disturb one another), never loaded whole.</summary>
    /// <remarks>Valid only while this body is not disposed.</remarks>
    public Stream OpenRead()
    {
        if (_spill is { } spill) return new FileRangeStream(spill.SafeFileHandle, 0, Length,
            at => new IOException($"spill file ended at {at} of {Length} bytes"));
        if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray(Memory, out var segment))
            return new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false);
        return new MemoryStream(Memory.ToArray(), writable: false);
    }

    /// <summary>The whole body as one array (tests and small bodies only).</summary>
    public byte[] ToArray()
    {
        if (_spill is null) return Memory.ToArray();
        using var ms = new MemoryStream(checked((int)Length));
        CopyTo(ms);
        return ms.ToArray();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _pooled, null) is { } pooled) ArrayPool<byte>.Shared.Return(pooled);
        Interlocked.Exchange(ref _spill, null)?.Dispose(); // DeleteOnClose: the spill file goes with it
    }
}

/// <summary>
/// Collects a message body as it arrives: in a pooled buffer up to <c>memoryLimit</c> bytes, then in a spill file
/// (written in large chunks through the same buffer). Memory per session is therefore bounded by the limit
/// whatever the message size. The CRC-32 is computed on the way, over the buffer each time it is handed on (one
/// vectorised pass per buffer, not one per write: a DATA run is a few KB, and each <see cref="Crc32.Append"/> of a
/// run that long costs a <see cref="Crc32.Combine"/>).
/// </summary>
public sealed class MessageBodyWriter : IDisposable
{
    private readonly string? _spillDirectory;
    private readonly int _memoryLimit;
    private byte[] _buffer;
    private int _used;
    private FileStream? _spill;
    private long _spilled;
    private uint _crc;
    private bool _completed;

    /// <param name="spillDirectory">Where large bodies go (the spool's <see cref="ISpool.SpillDirectory"/>); null keeps
    /// every body in memory.</param>
    /// <param name="memoryLimit">Largest body kept in memory; also the chunk size of spill-file writes.</param>
    /// <param name="sizeHint">Expected size (SIZE parameter), for the first buffer.</param>
    public MessageBodyWriter(string? spillDirectory, int memoryLimit, long sizeHint = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(memoryLimit, 4096);
        _spillDirectory = spillDirectory;
        _memoryLimit = memoryLimit;
        _buffer = ArrayPool<byte>.Shared.Rent((int)Math.Clamp(sizeHint + 4096, Math.Min(16 * 1024, memoryLimit), memoryLimit));
    }

    /// <summary>Bytes written so far.</summary>
    public long Length => _spilled + _used;

    /// <summary>True once the body went to a spill file.</summary>
    public bool IsSpilled => _spill is not null;

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        while (data.Length > 0)
        {
            int free = _buffer.Length - _used;
            if (free == 0)
            {
                if (_spill is null && (_spillDirectory is null || _buffer.Length < _memoryLimit)) Grow(data.Length);
                else await FlushToSpillAsync(ct).ConfigureAwait(false);
                continue;
            }
            int n = Math.Min(free, data.Length);
            data.Span[..n].CopyTo(_buffer.AsSpan(_used));
            _used += n;
            data = data[n..];
        }
    }

    private void Grow(int needed)
    {
        long target = Math.Max((long)_buffer.Length * 2, _used + (long)needed);
        if (_spillDirectory is not null) target = Math.Min(target, _memoryLimit);
        if (target > Array.MaxLength) throw new InvalidOperationException("message body too large to keep in memory");
        var bigger = ArrayPool<byte>.Shared.Rent((int)target);
        _buffer.AsSpan(0, _used).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    private async ValueTask FlushToSpillAsync(CancellationToken ct)
    {
        if (_spill is null)
        {
            Directory.CreateDirectory(_spillDirectory!);
            var path = Path.Combine(_spillDirectory!, $"body-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
            // Not fsync'd: the spool's own fsync of the segment it is copied into is the durability point.
            _spill = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.None, BufferSize = 0,
                Options = FileOptions.DeleteOnClose | FileOptions.Asynchronous,
            });
        }
        _crc = Crc32.Append(_crc, _buffer.AsSpan(0, _used));
        await RandomAccess.WriteAsync(_spill.SafeFileHandle, _buffer.AsMemory(0, _used), _spilled, ct).ConfigureAwait(false);
        _spilled += _used;
        _used = 0;
    }

    /// <summary>Finishes the body. The writer gives up its buffer or file to the result and must not be used again.</summary>
    public async ValueTask<MessageBody> CompleteAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (_spill is not null && _used > 0) await FlushToSpillAsync(ct).ConfigureAwait(false);
        _completed = true;
        if (_spill is not null)
        {
            var spill = _spill;
            _spill = null;
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
            return MessageBody.FromSpill(spill, _spilled, _crc);
        }
        var buffer = _buffer;
        _buffer = [];
        return MessageBody.FromPooled(buffer, _used, Crc32.Append(_crc, buffer.AsSpan(0, _used)));
    }

    public void Dispose()
    {
        if (_buffer.Length > 0) ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
        _spill?.Dispose();
        _spill = null;
        _completed = true;
    }
}
