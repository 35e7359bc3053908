namespace MtaSts.Actors.Spool;

/// <param name="Directory">Where the segment files live (created if missing). One spool per directory.</param>
/// <param name="SegmentSize">Roll to a new segment when the active one would grow past this (a single larger
/// record still gets a segment of its own).</param>
/// <param name="MaxBatchOperations">Upper bound of appends/dones covered by one fsync (keeps latency bounded).</param>
/// <param name="MaxBatchBytes">Upper bound of bytes written before one fsync.</param>
public sealed record SegmentSpoolOptions(
    string Directory,
    long SegmentSize = 64L * 1024 * 1024,
    int MaxBatchOperations = 4096,
    long MaxBatchBytes = 64L * 1024 * 1024)
{
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory)) throw new ArgumentException("spool directory is required");
        if (SegmentSize < 4096) throw new ArgumentOutOfRangeException(nameof(SegmentSize), "at least 4096 bytes");
        if (MaxBatchOperations < 1) throw new ArgumentOutOfRangeException(nameof(MaxBatchOperations));
        if (MaxBatchBytes < 1) throw new ArgumentOutOfRangeException(nameof(MaxBatchBytes));
    }
}

/// <summary>The spool's last write or fsync failed in a way that leaves the on-disk state uncertain; it refuses
/// further writes until restarted (after an fsync error the kernel may have dropped the dirty pages).</summary>
public sealed class SpoolFaultedException(string message, Exception? inner = null) : IOException(message, inner);
