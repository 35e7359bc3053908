using System.Globalization;

/// <summary>
/// Where a process's RSS lives, from <c>/proc/PID/smaps</c>: the status file's RssFile lumps the runtime's JIT code and
/// loader heaps (W^X double mapping: a memfd, "RssShmem") with the mapped assemblies and native libraries, and neither
/// is memory the destinations hold. Categories: anonymous (the GC heap, native heap, stacks), JIT code + loader heaps
/// (<c>/memfd:doublemapper</c>), managed assemblies (*.dll), native libraries (*.so), other mappings.
/// </summary>
internal sealed record SmapsBreakdown(long AnonKb, long JitKb, long AssembliesKb, long NativeLibsKb, long OtherKb)
{
    public long TotalKb => AnonKb + JitKb + AssembliesKb + NativeLibsKb + OtherKb;

    public static SmapsBreakdown? Read(int pid)
    {
        long anon = 0, jit = 0, dll = 0, so = 0, other = 0;
        string name = "";
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
            {
                if (line.Length > 0 && char.IsAsciiHexDigit(line[0]) && line.Contains('-'))
                {
                    // "start-end perms offset dev inode [path]": the path is the sixth field, may contain spaces.
                    var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
                    name = parts.Length == 6 ? parts[5].Trim() : "";
                    continue;
                }
                if (!line.StartsWith("Rss:", StringComparison.Ordinal)) continue;
                var kb = long.Parse(line.AsSpan(4).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
                if (name.Length == 0 || name.StartsWith('[')) anon += kb;           // [heap], [stack], anonymous
                else if (name.StartsWith("/memfd:doublemapper", StringComparison.Ordinal)) jit += kb;
                else if (name.EndsWith(".dll", StringComparison.Ordinal)) dll += kb;
                else if (name.Contains(".so", StringComparison.Ordinal)) so += kb;
                else other += kb;
            }
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        return new SmapsBreakdown(anon, jit, dll, so, other);
    }
}
