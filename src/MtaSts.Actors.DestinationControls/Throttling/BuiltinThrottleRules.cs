namespace MtaSts.Actors.DestinationControls.Throttling;

/// <summary>
/// Rules shipped for the throttling replies of large mailbox providers (on unless <c>mtasts.throttle.builtin = off</c>;
/// a configured rule with the same name replaces one). Kept to replies whose text says "slow down" — never a 5xx, a
/// greylisting reply or a per-user quota that the whole destination should not pay for. Each halves the current level
/// (connections in use, or messages of the last minute) and ramps back afterwards.
/// </summary>
public static class BuiltinThrottleRules
{
    private static ThrottleRule Rule(string name, string? code, string? enhanced, string? text, string action, string factor,
        string duration, string rampStep)
    {
        var entries = new List<KeyValuePair<string, string?>> { new("name", name), new("action", action), new("factor", factor),
            new("duration", duration), new("ramp-step", rampStep) };
        if (code is not null) entries.Add(new("code", code));
        if (enhanced is not null) entries.Add(new("enhanced", enhanced));
        if (text is not null) entries.Add(new("text", text));
        return (ThrottleRuleParser.Parse($"builtin {name}", entries, e => throw new InvalidOperationException(e)) ?? throw new InvalidOperationException(name))
            with { Builtin = true };
    }

    public static IReadOnlyList<ThrottleRule> All { get; } =
    [
        // Gmail: "421-4.7.28 ... Our system has detected an unusual rate of unsolicited mail originating from your IP
        // address ... temporarily rate limited" (Google's SMTP error reference, 4.7.28).
        Rule("gmail-rate-limited", "421", "4.7.28", null, "limit-connections", "0.5", "10m", "1m"),
        // Gmail: "450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional
        // messages from being delivered" — one mailbox's rate, so only the pace, briefly.
        Rule("gmail-receiving-rate", "450", "4.2.1", "receiving mail at a rate", "limit-rate", "0.5", "2m", "30s"),
        // Microsoft (Outlook.com / Exchange Online): "451 4.7.650 The mail server [IP] has been temporarily rate
        // limited due to IP reputation" (Microsoft's NDR reference for 4.7.650).
        Rule("microsoft-rate-limited", "451", "4.7.650", null, "limit-connections", "0.5", "15m", "1m"),
        // Microsoft / Yahoo: "421 4.7.0 ... temporarily deferred" (Yahoo: "[TSS04] Messages from IP temporarily deferred
        // due to unexpected volume or user complaints").
        Rule("temporarily-deferred", "421", "4.7.0", @"temporarily deferred", "limit-connections", "0.5", "15m", "1m"),
        // Yahoo's deferral codes ([TS01], [TS02], [TS03], [TSS04]...): its postmaster pages ask senders to slow down.
        Rule("yahoo-deferred", "4xx", null, @"\[TSS?0\d\]", "limit-connections", "0.5", "15m", "1m"),
        // Any receiver: "421 ... too many connections / concurrent sessions from your IP".
        Rule("too-many-connections", "4xx", null, @"too many (concurrent |simultaneous |open )?(connections|sessions)", "limit-connections", "0.5", "5m", "30s"),
        // Any receiver closing with "421 ... try again later" (RFC 5321 §3.8: service not available, closing).
        Rule("service-busy", "421", null, @"try (again )?later", "limit-connections", "0.5", "2m", "30s"),
    ];
}
