using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using MtaSts.Actors.Logging;

namespace MtaSts.Actors.Smtp.Tests.Logging;

/// <summary>The operator log's "one event, one line, always" (MailLog remarks): the text form escapes control
/// characters and line separators, the JSON twin keeps the original values on one line.</summary>
public sealed class MailLogEscapingTests
{
    private const string Forged = "Mon Nov 23 10:00:00 2026 Info: MID 1 done";
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 9, 0, 0, TimeSpan.Zero);
    private static readonly Regex LineStart = new(@"^\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4} (Debug|Info|Warning|Critical): ");

    private sealed class Rig
    {
        public StringWriter Text { get; } = new();
        public StringWriter Json { get; } = new();
        public List<MailLogEntry> Entries { get; } = [];
        public MailLog Log { get; }

        public Rig()
        {
            Log = new MailLog(Text, Json, clock: () => Now);
            Log.Written += Entries.Add;
        }

        public string[] TextLines => Lines(Text);
        public string[] JsonLines => Lines(Json);

        private static string[] Lines(StringWriter w)
        {
            var all = w.ToString();
            Assert.EndsWith(Environment.NewLine, all);
            return all[..^Environment.NewLine.Length].Split(Environment.NewLine);
        }
    }

    [Fact]
    public void Crlf_in_a_value_gives_exactly_one_text_line_with_the_visible_escape()
    {
        var rig = new Rig();
        var user = "x\r\n" + Forged;
        rig.Log.Warning("icid_auth_failed", $"ICID 5 AUTH failed user {user} mechanism LOGIN", ("icid", 5L), ("user", user));

        var line = Assert.Single(rig.TextLines);
        Assert.Equal(@"Mon Nov 23 09:00:00 2026 Warning: ICID 5 AUTH failed user x\r\n" + Forged + " mechanism LOGIN", line);
        Assert.DoesNotContain('\r', rig.Text.ToString());
        // The observers get the original text.
        Assert.Equal($"ICID 5 AUTH failed user {user} mechanism LOGIN", Assert.Single(rig.Entries).Text);
    }

    [Theory]
    [InlineData("x\r\n")]
    [InlineData("x\n")]
    [InlineData("x\r")]
    [InlineData("x\u2028")]
    [InlineData("x\u2029")]
    [InlineData("x\u0085")]
    [InlineData("x\u000B")]
    [InlineData("x\u000C")]
    [InlineData("x\\\r\n")]
    public void A_forged_line_cannot_start_a_line(string separator)
    {
        var rig = new Rig();
        rig.Log.Info("mid_from", "MID 2 ICID 5 From: <" + separator + Forged + ">", ("mid", 2L));
        rig.Log.Info("mid_queued", "MID 2 queued for delivery", ("mid", 2L));

        var lines = rig.TextLines;
        Assert.Equal(2, lines.Length);
        Assert.All(lines, l => Assert.Matches(LineStart, l));
        Assert.DoesNotContain(lines, l => l.StartsWith(Forged, StringComparison.Ordinal));
        // No character any common reader treats as a line break survives.
        Assert.All(lines, l => Assert.Equal(-1, l.IndexOfAny(['\r', '\n', '\v', '\f', '\u0085', '\u2028', '\u2029'])));
    }

    [Theory]
    [InlineData("a\u2028b", @"a\u2028b")]
    [InlineData("a\u2029b", @"a\u2029b")]
    [InlineData("a\0b", @"a\x00b")]
    [InlineData("a\u001b[2Jb", @"a\x1b[2Jb")]              // ESC [ 2 J: clear screen
    [InlineData("\u001b]0;owned\u0007", @"\x1b]0;owned\x07")] // OSC: set the terminal title
    [InlineData("a\u007fb", @"a\x7fb")]                     // DEL
    [InlineData("a\u009b2Jb", @"a\x9b2Jb")]                 // C1 CSI (8-bit ESC [)
    [InlineData("a\u0085b", @"a\x85b")]                     // NEL
    [InlineData("a\u0080\u009fb", @"a\x80\x9fb")]
    [InlineData("a\tb", @"a\tb")]
    [InlineData("a\u001fb", @"a\x1fb")]
    public void Control_characters_and_separators_are_escaped(string text, string expected)
    {
        Assert.Equal(expected, MailLog.EscapeText(text));
        Assert.Equal(text, MailLog.UnescapeText(expected));
    }

    [Theory]
    [InlineData(@"a\nb", @"a\\nb")]        // a literal backslash-n is not a newline
    [InlineData(@"a\x1b", @"a\\x1b")]
    [InlineData(@"a\u2028", @"a\\u2028")]
    [InlineData(@"a\tb\rc", @"a\\tb\\rc")]
    [InlineData(@"a\\b", @"a\\\b")]        // first backslash is followed by a backslash, the second by 'b'
    [InlineData("a\\\nb", @"a\\\nb")]      // backslash then a real LF
    [InlineData("a\\\u001b", @"a\\\x1b")]
    public void A_backslash_that_would_read_as_an_escape_is_doubled(string text, string expected)
    {
        Assert.Equal(expected, MailLog.EscapeText(text));
        Assert.Equal(text, MailLog.UnescapeText(expected));
    }

    [Theory]
    [InlineData("MID 101 ICID 7 From: <s@example.org>")]
    [InlineData("Delayed: DCID 8 MID 6 RID 0 - ('452', ['4.2.2 this user doesn\\'t have space'])")] // vendor form keeps \'
    [InlineData("AUTH success user jörg@exämple.test mechanism PLAIN")]                           // SMTPUTF8
    [InlineData("MID 3 From: <\"a\\\"b\"@x.test>")]                                               // quoted-pair
    [InlineData("ends in a backslash \\")]
    [InlineData("日本語 😀 ünïcödé")]
    [InlineData("")]
    public void Text_without_anything_to_escape_is_the_same_instance(string text)
    {
        Assert.Same(text, MailLog.EscapeText(text));
        Assert.Equal(text, MailLog.UnescapeText(text));
        var e = new MailLogEntry(Now, MailLogLevel.Info, "x", text, []);
        Assert.Equal("Mon Nov 23 09:00:00 2026 Info: " + text, MailLog.FormatText(e));
    }

    [Fact]
    public void Escaping_round_trips_and_leaves_no_control_character()
    {
        // Everything the rules treat specially, plus the letters of the escape alphabet.
        char[] alphabet = ['\\', 't', 'n', 'r', 'x', 'u', '0', '1', 'b', 'a', ' ', '\'', '\t', '\n', '\r', '\0', '\u001b',
            '\u007f', '\u0085', '\u009b', '\u2028', '\u2029', 'é', '€'];
        var random = new Random(8461);
        for (int n = 0; n < 20_000; n++)
        {
            var chars = new char[random.Next(0, 12)];
            for (int i = 0; i < chars.Length; i++) chars[i] = alphabet[random.Next(alphabet.Length)];
            var text = new string(chars);
            var escaped = MailLog.EscapeText(text);
            Assert.True(escaped.All(c => c >= 0x20 && c is not (>= '\u007f' and <= '\u009f') and not '\u2028' and not '\u2029'), escaped);
            Assert.Equal(text, MailLog.UnescapeText(escaped));
        }
    }

    [Theory]
    [InlineData(@"\xZZ \x1 \u12 \u", @"\xZZ \x1 \u12 \u")] // text logged before escaping existed: taken literally
    [InlineData(@"C:\dir \q", @"C:\dir \q")]
    public void Unescape_takes_what_is_not_an_escape_literally(string escaped, string expected) =>
        Assert.Equal(expected, MailLog.UnescapeText(escaped));

    [Fact]
    public void Json_twin_is_one_line_and_keeps_the_original_values()
    {
        var rig = new Rig();
        var user = "x\r\n" + Forged + "\u2028\u0000\u001b[2J\\n\u0085é";
        var text = $"ICID 5 AUTH failed user {user} mechanism LOGIN";
        rig.Log.Warning("icid_auth_failed", text,
            ("icid", 5L),
            ("user", user),
            ("lines", new[] { "one\ntwo", "three\r\n" }),
            ("reply", new FieldRecord("550\r\n5.1.1", ["a\nb"])),
            ("by_key", new Dictionary<string, string> { ["k\r\ney"] = "v\na\nl" }),
            ("raw", new RawJson()),
            ("null", null));

        var line = Assert.Single(rig.JsonLines);
        Assert.DoesNotContain('\r', line);
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        Assert.Equal(text, root.GetProperty("text").GetString());
        Assert.Equal(user, root.GetProperty("user").GetString());
        Assert.Equal(new[] { "one\ntwo", "three\r\n" }, root.GetProperty("lines").EnumerateArray().Select(x => x.GetString()!).ToArray());
        Assert.Equal("550\r\n5.1.1", root.GetProperty("reply").GetProperty("Code").GetString());
        Assert.Equal("a\nb", root.GetProperty("reply").GetProperty("Lines")[0].GetString());
        Assert.Equal("v\na\nl", root.GetProperty("by_key").GetProperty("k\r\ney").GetString());
        Assert.Equal("still\nhere", root.GetProperty("raw").GetProperty("a").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("null").ValueKind);
        // And the text twin is one line too.
        Assert.Single(rig.TextLines);
    }

    private sealed record FieldRecord(string Code, string[] Lines);

    /// <summary>A converter that writes raw JSON with line breaks between its tokens (valid JSON whitespace).</summary>
    [JsonConverter(typeof(RawJsonConverter))]
    private sealed class RawJson;

    private sealed class RawJsonConverter : JsonConverter<RawJson>
    {
        public override RawJson Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => throw new NotSupportedException();
        public override void Write(Utf8JsonWriter writer, RawJson value, JsonSerializerOptions options) =>
            writer.WriteRawValue("{\r\n  \"a\":\n  \"still\\nhere\"\n}");
    }

    [Theory]
    [InlineData("user\u202Eevil", @"user\u202eevil")] // RIGHT-TO-LEFT OVERRIDE
    [InlineData("a\u2066b\u2069", @"a\u2066b\u2069")] // isolates
    [InlineData("\u202A\u202B\u202C\u202D", @"\u202a\u202b\u202c\u202d")]
    public void Bidi_controls_are_escaped_and_round_trip(string raw, string escaped)
    {
        Assert.Equal(escaped, MailLog.EscapeText(raw));
        Assert.Equal(raw, MailLog.UnescapeText(escaped));
    }
}
