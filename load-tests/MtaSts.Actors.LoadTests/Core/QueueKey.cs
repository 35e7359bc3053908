using System.Globalization;
using System.Text.RegularExpressions;

namespace MtaSts.Actors.LoadTests.Core;

/// <summary>
/// A target's queue id as a number, so the ledger can keep one per message without a string each: the gateway's
/// MID is decimal ("250 2.0.0 Ok: queued as 1234"), Postfix's short queue id is hex ("… queued as 4F1A2B3C4D").
/// The same parse is applied to the 250 reply, to queue file names and to log lines, so keys from all three match.
/// 0 = no id.
/// </summary>
public static partial class QueueKey
{
    [GeneratedRegex(@"queued as ([0-9A-Za-z]+)")]
    private static partial Regex QueuedAs();

    public static long FromReply(string text)
    {
        var m = QueuedAs().Match(text);
        return m.Success ? Parse(m.Groups[1].Value) : 0;
    }

    public static long Parse(string id)
    {
        if (id.Length is 0 or > 15) return 0;
        if (long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var dec)) return dec;
        if (long.TryParse(id, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hex)) return hex;
        return 0;
    }
}
