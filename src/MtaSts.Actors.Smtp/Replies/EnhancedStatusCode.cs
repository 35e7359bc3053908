using System.Globalization;

namespace MtaSts.Actors.Smtp.Replies;

/// <summary>RFC 3463 enhanced mail system status code <c>class.subject.detail</c>.</summary>
public readonly record struct EnhancedStatusCode(int Class, int Subject, int Detail)
{
    public static readonly EnhancedStatusCode Delivered = new(2, 0, 0);
    /// <summary>4.4.1 No answer from host.</summary>
    public static readonly EnhancedStatusCode NoAnswer = new(4, 4, 1);
    /// <summary>4.4.2 Bad connection.</summary>
    public static readonly EnhancedStatusCode BadConnection = new(4, 4, 2);
    /// <summary>5.1.1 Bad destination mailbox address.</summary>
    public static readonly EnhancedStatusCode BadMailbox = new(5, 1, 1);
    /// <summary>5.1.2 Bad destination system address (vendor: "Bad destination host", e.g. NXDOMAIN).</summary>
    public static readonly EnhancedStatusCode BadDestinationHost = new(5, 1, 2);
    /// <summary>5.4.7 Delivery time expired (vendor: "Delivery expired (message too old)").</summary>
    public static readonly EnhancedStatusCode Expired = new(5, 4, 7);
    /// <summary>4.7.5 / 5.7.5 Cryptographic failure (TLS could not be negotiated or verified).</summary>
    public static EnhancedStatusCode CryptographicFailure(bool permanent) => new(permanent ? 5 : 4, 7, 5);

    public bool IsSuccess => Class == 2;
    public bool IsTransient => Class == 4;
    public bool IsPermanent => Class == 5;

    /// <summary>RFC 3463 §2: class is 2, 4 or 5; subject and detail are 1..3 digits without leading zeros.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out EnhancedStatusCode code) =>
        TryParseAtStart(text, out code, out var length) && length == text.Length;

    public static EnhancedStatusCode Parse(string text) =>
        TryParse(text, out var c) ? c : throw new FormatException($"'{text}' is not an RFC 3463 status code");

    /// <summary>Reads a code at the start of reply text (RFC 2034 §4), which must be followed by white space or the end.</summary>
    public static bool TryParseAtStart(ReadOnlySpan<char> text, out EnhancedStatusCode code, out int length)
    {
        code = default;
        length = 0;
        if (text.Length < 5 || text[0] is not ('2' or '4' or '5') || text[1] != '.') return false;
        var pos = 2;
        if (!Number(text, ref pos, out var subject) || pos >= text.Length || text[pos] != '.') return false;
        pos++;
        if (!Number(text, ref pos, out var detail)) return false;
        if (pos < text.Length && !char.IsWhiteSpace(text[pos])) return false;
        code = new EnhancedStatusCode(text[0] - '0', subject, detail);
        length = pos;
        return true;
    }

    private static bool Number(ReadOnlySpan<char> s, ref int pos, out int value)
    {
        value = 0;
        var start = pos;
        while (pos < s.Length && char.IsAsciiDigit(s[pos]) && pos - start < 4) value = value * 10 + (s[pos++] - '0');
        var len = pos - start;
        return len is >= 1 and <= 3 && !(len > 1 && s[start] == '0');
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Class}.{Subject}.{Detail}");

    /// <summary>Short text for logs: the vendor's wording where known (research §1.6), else the RFC 3463 name.</summary>
    public string Description => Describe(this);

    public static string Describe(EnhancedStatusCode code)
    {
        // Vendor wordings seen in mail_logs.
        switch (code)
        {
            case { Class: 5, Subject: 1, Detail: 0 }: return "Unknown address error";
            case { Subject: 1, Detail: 2 }: return "Bad destination host";
            case { Subject: 3, Detail: 2 }: return "Not accepting messages at this time";
            case { Subject: 4, Detail: 7 }: return "Delivery expired (message too old)";
        }
        return (code.Subject, code.Detail) switch
        {
            (0, 0) => code.Class == 2 ? "Success" : "Other or undefined status",
            (1, 0) => "Other address status",
            (1, 1) => "Bad destination mailbox address",
            (1, 3) => "Bad destination mailbox address syntax",
            (1, 4) => "Destination mailbox address ambiguous",
            (1, 5) => "Destination address valid",
            (1, 6) => "Destination mailbox has moved, no forwarding address",
            (1, 7) => "Bad sender's mailbox address syntax",
            (1, 8) => "Bad sender's system address",
            (2, 0) => "Other or undefined mailbox status",
            (2, 1) => "Mailbox disabled, not accepting messages",
            (2, 2) => "Mailbox full",
            (2, 3) => "Message length exceeds administrative limit",
            (2, 4) => "Mailing list expansion problem",
            (3, 0) => "Other or undefined mail system status",
            (3, 1) => "Mail system full",
            (3, 3) => "System not capable of selected features",
            (3, 4) => "Message too big for system",
            (3, 5) => "System incorrectly configured",
            (4, 0) => "Other or undefined network or routing status",
            (4, 1) => "No answer from host",
            (4, 2) => "Bad connection",
            (4, 3) => "Directory server failure",
            (4, 4) => "Unable to route",
            (4, 5) => "Mail system congestion",
            (4, 6) => "Routing loop detected",
            (5, 0) => "Other or undefined protocol status",
            (5, 1) => "Invalid command",
            (5, 2) => "Syntax error",
            (5, 3) => "Too many recipients",
            (5, 4) => "Invalid command arguments",
            (5, 5) => "Wrong protocol version",
            (6, 0) => "Other or undefined media error",
            (6, 1) => "Media not supported",
            (6, 2) => "Conversion required and prohibited",
            (6, 3) => "Conversion required but not supported",
            (6, 4) => "Conversion with loss performed",
            (6, 5) => "Conversion failed",
            (7, 0) => "Other or undefined security status",
            (7, 1) => "Delivery not authorized, message refused",
            (7, 2) => "Mailing list expansion prohibited",
            (7, 3) => "Security conversion required but not possible",
            (7, 4) => "Security features not supported",
            (7, 5) => "Cryptographic failure",
            (7, 6) => "Cryptographic algorithm not supported",
            (7, 7) => "Message integrity failure",
            (7, 10) => "Encryption needed", // RFC 5248 registry
            _ => code.Subject switch
            {
                1 => "Other address status",
                2 => "Other or undefined mailbox status",
                3 => "Other or undefined mail system status",
                4 => "Other or undefined network or routing status",
                5 => "Other or undefined protocol status",
                6 => "Other or undefined media error",
                7 => "Other or undefined security status",
                _ => "Other or undefined status",
            },
        };
    }
}
