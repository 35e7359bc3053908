using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace MtaSts.Actors.Spool;

/// <summary>
/// Exclusive ownership of a gateway data directory (spool, SQLite journal, policy cache) for the life of the process:
/// <c>&lt;dir&gt;/gateway.lock</c>, held open with <see cref="FileShare.None"/> and holding the owner's PID. Two
/// gateways on one directory would each recover and deliver the same spool and write the same journal; the second
/// one fails at start instead. The lock is an OS lock on the open file (flock on Unix), so it is released when the
/// process dies, even by SIGKILL; the file itself stays (deleting it would race with the next owner).
/// </summary>
/// <example>
/// <code>
/// using var owner = DataDirectoryLock.Acquire("/var/lib/mtasts");   // throws DataDirectoryInUseException
/// var spool = new SegmentSpool(new SegmentSpoolOptions("/var/lib/mtasts/spool"), log);
/// </code>
/// </example>
public sealed class DataDirectoryLock : IDisposable
{
    public const string FileName = "gateway.lock";

    private FileStream? _file;

    private DataDirectoryLock(string directory, string lockFile, FileStream file)
    {
        DataDirectory = directory;
        LockFile = lockFile;
        _file = file;
    }

    /// <summary>The locked directory (full path).</summary>
    public string DataDirectory { get; }

    /// <summary>The lock file (full path).</summary>
    public string LockFile { get; }

    /// <summary>Takes the lock, creating the directory if needed. Does not wait: throws
    /// <see cref="DataDirectoryInUseException"/> if another process (or another lock in this one) holds it.</summary>
    public static DataDirectoryLock Acquire(string directory)
    {
        directory = Path.GetFullPath(directory);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        FileStream file;
        try
        {
            // On Unix .NET takes flock(LOCK_EX | LOCK_NB) for FileShare.None: a second process, or a second handle
            // in this process, fails with a sharing violation.
            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
        }
        catch (IOException ex) when (IsSharingViolation(ex))
        {
            throw new DataDirectoryInUseException(directory, path, ReadHolderPid(path), ex);
        }
        try
        {
            // .NET skips that flock when file locking is switched off (DOTNET_SYSTEM_IO_DISABLEFILELOCKING); take it
            // explicitly too, so that switch cannot silently turn the guard off. On the same descriptor it is a no-op.
            if (!OperatingSystem.IsWindows() && Flock((int)file.SafeFileHandle.DangerousGetHandle(), LockEx | LockNb) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is EWouldBlockLinux or EWouldBlockBsd) throw new DataDirectoryInUseException(directory, path, ReadHolderPid(path));
                throw new IOException($"flock({path}) failed: errno {errno}");
            }
            file.SetLength(0);
            file.Write(Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n"));
            file.Flush();
        }
        catch
        {
            file.Dispose();
            throw;
        }
        return new DataDirectoryLock(directory, path, file);
    }

    /// <summary>Releases the lock (idempotent). The PID is cleared first so the file does not name a stale owner.</summary>
    public void Dispose()
    {
        var file = Interlocked.Exchange(ref _file, null);
        if (file is null) return;
        try { file.SetLength(0); }
        catch (IOException) { }
        file.Dispose();
    }

    private static bool IsSharingViolation(IOException ex) =>
        ex.GetType() == typeof(IOException) && ex.HResult is EWouldBlockLinux or EWouldBlockBsd
            or unchecked((int)0x80070020) /* ERROR_SHARING_VIOLATION */ or unchecked((int)0x80070021) /* ERROR_LOCK_VIOLATION */;

    /// <summary>The holder's PID from the lock file, or null. Opened with libc: a .NET FileStream on a file another
    /// process holds with FileShare.None fails even for reading (it asks for a shared flock). On Windows the file
    /// cannot be opened at all while it is held.</summary>
    private static int? ReadHolderPid(string path)
    {
        if (OperatingSystem.IsWindows()) return null;
        var fd = Open(path, 0 /* O_RDONLY */);
        if (fd < 0) return null;
        try
        {
            using var handle = new SafeFileHandle(fd, ownsHandle: true);
            using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 1);
            var buffer = new byte[32];
            var n = stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            return int.TryParse(Encoding.ASCII.GetString(buffer, 0, n).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0
                ? pid
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private const int LockEx = 2, LockNb = 4;
    private const int EWouldBlockLinux = 11, EWouldBlockBsd = 35;

    [DllImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static extern int Flock(int fd, int operation);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
}

/// <summary>Another gateway (another process, or another <see cref="DataDirectoryLock"/> in this one) owns the data
/// directory. The message names the directory, the holder's PID when it could be read, and the lock file.</summary>
public sealed class DataDirectoryInUseException(string directory, string lockFile, int? holderPid, Exception? inner = null)
    : Exception(holderPid is { } pid
        ? $"data directory {directory} is in use by another gateway (pid {pid}; lock file {lockFile})"
        : $"data directory {directory} is in use by another gateway (lock file {lockFile})", inner)
{
    public string DataDirectory { get; } = directory;
    public string LockFile { get; } = lockFile;
    public int? HolderPid { get; } = holderPid;
}
