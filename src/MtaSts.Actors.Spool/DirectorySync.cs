using System.Runtime.InteropServices;

namespace MtaSts.Actors.Spool;

/// <summary>
/// fsync of a directory, so that a newly created, renamed or deleted file name is itself durable (POSIX: fsync on
/// a file does not persist its directory entry). .NET has no API for it; on Unix we call libc directly. On Windows
/// NTFS journals metadata and there is no equivalent call, so this is a no-op there.
/// </summary>
internal static partial class DirectorySync
{
    public static void Fsync(string directory)
    {
        if (OperatingSystem.IsWindows()) return;
        int fd = Open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
            throw new IOException($"open({directory}) for directory fsync failed: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (FsyncFd(fd) != 0)
                throw new IOException($"fsync({directory}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int FsyncFd(int fd);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
}
