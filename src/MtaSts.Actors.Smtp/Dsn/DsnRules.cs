using MtaSts.Actors.Spool;

namespace MtaSts.Actors.Smtp.Dsn;

/// <summary>When a DSN is due and what it returns (RFC 3461, vendor rules).</summary>
public static class DsnRules
{
    /// <summary>
    /// Whether the sender asked (or, without NOTIFY, is owed) a DSN of this kind for this recipient.
    /// Never for the null reverse-path (RFC 5321 §4.5.5: no bounce of a bounce). NOTIFY=NEVER: none. No NOTIFY:
    /// failures only (RFC 3461 §4.1 lets the MTA choose FAILURE or FAILURE,DELAY; the vendor sends failures only).
    /// DELAY and SUCCESS only when asked. Relayed/Expanded answer a SUCCESS request (RFC 3461 §6.2.3).
    /// </summary>
    public static bool ShouldNotify(string reversePath, Recipient recipient, DsnAction action)
    {
        if (string.IsNullOrEmpty(reversePath) || reversePath == "<>") return false;
        var notify = recipient.Notify;
        if (notify.HasFlag(DsnNotify.Never)) return false;
        if (notify == DsnNotify.Default) return action == DsnAction.Failed;
        return action switch
        {
            DsnAction.Failed => notify.HasFlag(DsnNotify.Failure),
            DsnAction.Delayed => notify.HasFlag(DsnNotify.Delay),
            _ => notify.HasFlag(DsnNotify.Success),
        };
    }

    /// <summary>The reports that belong in a DSN to the sender of <paramref name="envelope"/> (may be empty: send none).
    /// <paramref name="sendFailureDsn"/> is the bounce profile's "send DSN" switch; it silences failure reports only.</summary>
    public static IReadOnlyList<DsnRecipientReport> Select(Envelope envelope, IEnumerable<DsnRecipientReport> reports, bool sendFailureDsn = true) =>
        reports.Where(r => (sendFailureDsn || r.Action != DsnAction.Failed) && ShouldNotify(envelope.ReversePath, r.Recipient, r.Action)).ToList();

    /// <summary>
    /// What to return: RET=FULL → the whole message; RET=HDRS → headers; no RET → the whole message only below
    /// <paramref name="maxFullBytes"/> (vendor <c>max_bounce_copy</c>, 10 KB), else headers. A DSN without a failure
    /// returns headers only (RFC 3461 §4.3: RET governs failed DSNs).
    /// </summary>
    public static DsnReturnedContent ReturnedContent(DsnRet ret, long messageLength, bool anyFailed, int maxFullBytes = 10 * 1024)
    {
        if (!anyFailed) return DsnReturnedContent.Headers;
        return ret switch
        {
            DsnRet.Full => DsnReturnedContent.FullMessage,
            DsnRet.Headers => DsnReturnedContent.Headers,
            _ => messageLength < maxFullBytes ? DsnReturnedContent.FullMessage : DsnReturnedContent.Headers,
        };
    }
}
