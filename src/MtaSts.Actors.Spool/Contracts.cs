using System.Net;

namespace MtaSts.Actors.Spool;

/// <summary>RFC 3461 §4.3 RET parameter.</summary>
public enum DsnRet { Unspecified, Full, Headers }

/// <summary>RFC 3461 §4.1 NOTIFY parameter (flags; Never excludes the others).</summary>
[Flags]
public enum DsnNotify { Default = 0, Never = 1, Success = 2, Failure = 4, Delay = 8 }

/// <param name="Rid">Recipient index within the message (vendor RID), 0-based in RCPT order.</param>
/// <param name="OriginalRecipient">RFC 3461 ORCPT value as received (addr-type;xtext-decoded address), if any.</param>
public sealed record Recipient(int Rid, string Address, DsnNotify Notify = DsnNotify.Default, string? OriginalRecipient = null)
{
    /// <summary>Lower-cased domain part (after the last '@').</summary>
    public string Domain => Address[(Address.LastIndexOf('@') + 1)..].ToLowerInvariant();
}

/// <param name="ReversePath">MAIL FROM address; empty string for the null reverse-path &lt;&gt; (never gets a DSN).</param>
public sealed record Envelope(
    string ReversePath,
    IReadOnlyList<Recipient> Recipients,
    DateTimeOffset ReceivedAt,
    long Icid = 0,
    string ClientHelo = "",
    string ClientAddress = "",
    string? EnvId = null,
    DsnRet Ret = DsnRet.Unspecified,
    bool EightBitMime = false,
    bool SmtpUtf8 = false);

/// <summary>A message that is on disk (fsync'd). Mid is the vendor MID, unique across restarts.</summary>
public sealed record SpooledMessage(long Mid, Envelope Envelope, long BodyLength);

/// <summary>A message recovered at start-up with the recipients that still need an outcome.</summary>
public sealed record RecoveredMessage(SpooledMessage Message, IReadOnlyList<int> OutstandingRids);

/// <summary>
/// The durable store of accepted mail. It is the source of truth for "what still has to be delivered":
/// a message is appended (body + envelope) once, durable when <see cref="AppendAsync"/> completes (group
/// commit: one fsync covers every append waiting at that moment), and leaves the spool when every recipient
/// has been marked done (delivered, bounced or expired).
/// </summary>
public interface ISpool : IAsyncDisposable
{
    /// <summary>Appends and fsyncs. Completes only when the message is durable. The caller assigns the MID, owns
    /// <paramref name="body"/> and disposes it only after this task has completed.</summary>
    Task<SpooledMessage> AppendAsync(long mid, Envelope envelope, MessageBody body, CancellationToken ct = default);

    /// <summary>Where a <see cref="MessageBodyWriter"/> puts bodies too large to keep in memory while they arrive
    /// (same file system as the spool; emptied at start-up). Null: bodies stay in memory.</summary>
    string? SpillDirectory => null;

    /// <summary>The body as received (after dot-unstuffing), exactly the bytes given to AppendAsync.</summary>
    ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(long mid, CancellationToken ct = default);

    /// <summary>The same bytes as <see cref="ReadBodyAsync"/> as a read-only seekable stream with a known length, for
    /// sending a body without a copy of it in memory. This default reads the whole body; a spool that can read in
    /// place (<see cref="SegmentSpool"/>) overrides it. The caller disposes the stream.</summary>
    async ValueTask<Stream> OpenBodyAsync(long mid, CancellationToken ct = default)
    {
        var body = await ReadBodyAsync(mid, ct).ConfigureAwait(false);
        return System.Runtime.InteropServices.MemoryMarshal.TryGetArray(body, out var a)
            ? new MemoryStream(a.Array!, a.Offset, a.Count, writable: false)
            : new MemoryStream(body.ToArray(), writable: false);
    }

    /// <summary>Whether <see cref="ReadMessageAsync"/> reads a queued message back by MID (a destination then keeps
    /// only a window of its queue in memory and reads the rest back when the window has room).</summary>
    bool CanReadMessages => false;

    /// <summary>A queued message's envelope and body length as appended (every recipient, done or not); null when the
    /// spool no longer holds the message.</summary>
    ValueTask<SpooledMessage?> ReadMessageAsync(long mid, CancellationToken ct = default) =>
        throw new NotSupportedException($"{GetType().Name} cannot read a message back by MID");

    /// <summary>Records a final outcome for some recipients. Group-committed; losing the last few on a crash
    /// causes a duplicate delivery after restart, never a loss. Returns true when this call finished the message
    /// (its last outstanding recipient), so that "Message finished" is logged exactly once.</summary>
    ValueTask<bool> MarkDoneAsync(long mid, IReadOnlyList<int> rids, CancellationToken ct = default);

    /// <summary>Messages that still have outstanding recipients (call once at start-up, before accepting mail).</summary>
    IReadOnlyList<RecoveredMessage> Recover();

    /// <summary>Highest MID ever stored (so that MIDs are not reused after a restart).</summary>
    long HighestMid { get; }

    /// <summary>Messages currently held (outstanding recipients &gt; 0).</summary>
    int Count { get; }
}

/// <summary>
/// A spool every node of a cluster reads (PostgreSQL): the owner of a destination domain — wherever in the cluster it
/// runs — loads that domain's queue from here, whichever node accepted the mail. Domains are stored under the key the
/// gateway gives (its normalised <c>DestinationDomain</c> name), never re-derived here.
/// </summary>
public interface IClusterSpool : ISpool
{
    /// <summary>Messages with outstanding recipients in <paramref name="domain"/>; each <see cref="RecoveredMessage"/>
    /// lists only that domain's outstanding RIDs. Ordered by MID (oldest first).</summary>
    Task<IReadOnlyList<RecoveredMessage>> OutstandingAsync(string domain, CancellationToken ct = default);

    /// <summary>Every domain with at least one outstanding recipient, and how many.</summary>
    Task<IReadOnlyList<(string Domain, int Recipients)>> DomainsAsync(CancellationToken ct = default);
}
