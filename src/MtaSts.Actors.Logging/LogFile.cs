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
            if (fd >= 0) return new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write);
        }
        return new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
    }

    // Linux values (the generic ones, shared by x64, arm64, arm and the other .NET targets).
    private const int OWriteOnly = 0x1, OCreate = 0x40, OAppend = 0x400, OCloseOnExec = 0x80000;

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);
}
