using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MtaSts.Actors.Logging;

/// <summary>
/// Opens an operator log file for appending when other processes may append to it too (a second gateway started on
/// the same configuration writes its Critical start-up failure to the same file). .NET's FileMode.Append only seeks
/// to the end once, at open: two writers then overwrite each other's lines. On Linux the file is opened with
/// O_APPEND, so every write lands at the current end of the file whoever else wrote meanwhile.
/// </summary>
public static class LogFile
{
    public static Stream OpenAppend(string path)
    {
        if (OperatingSystem.IsLinux())
        {
            var fd = Open(path, OWriteOnly | OCreate | OAppend | OCloseOnExec, 438 /* 0666, less the umask, as .NET creates files */);
            // On failure the managed open below reports it with the usual .NET exception (missing directory, access).
            if (fd >= 0) return new WritebackStream(new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write), fd);
        }
        return new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
    }

    /// <summary>Bytes written between two writeback requests (<see cref="WritebackStream"/>).</summary>
    public const long WritebackBytes = 1024 * 1024;

    /// <summary>
    /// The log file, asking the kernel to start writing what it holds back every <see cref="WritebackBytes"/>
    /// (sync_file_range SYNC_FILE_RANGE_WRITE: starts the writeback, waits for nothing; RocksDB's bytes_per_sync).
    /// Left alone, the log's dirty pages (≈ 3 MB/s at 4,500 msg/s) were written back in 30-second-old bursts, and on
    /// ext4 (data=ordered) the spool's next fsync waited for that burst: 170 ms without a 250, measured (issue 15).
    /// Not an fsync: the log is not the durability point, the spool is.
    /// </summary>
    public sealed class WritebackStream(FileStream inner, int fd) : Stream
    {
        private long _unsynced;

        /// <summary>Writeback requests made (tests).</summary>
        public int Requests { get; private set; }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            _unsynced += buffer.Length;
        }

        public override void Flush()
        {
            inner.Flush();
            if (_unsynced < WritebackBytes) return;
            _unsynced = 0;
            Requests++;
            _ = SyncFileRange(fd, 0, 0, SyncFileRangeWrite); // advisory: a failure changes nothing
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    private const uint SyncFileRangeWrite = 2;

    [DllImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static extern int SyncFileRange(int fd, long offset, long nbytes, uint flags);

    // Linux values (the generic ones, shared by x64, arm64, arm and the other .NET targets).
    private const int OWriteOnly = 0x1, OCreate = 0x40, OAppend = 0x400, OCloseOnExec = 0x80000;

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);
}
