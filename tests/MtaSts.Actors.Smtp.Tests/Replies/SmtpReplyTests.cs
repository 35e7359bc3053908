using MtaSts.Actors.Smtp.Replies;

namespace MtaSts.Actors.Smtp.Tests.Replies;

public sealed class SmtpReplyTests
{
    [Theory]
    [InlineData("250 OK", 250, SmtpReplyClass.Success)]
    [InlineData("354 Start mail input", 354, SmtpReplyClass.Intermediate)]
    [InlineData("421 4.3.2 try again later", 421, SmtpReplyClass.Transient)]
    [InlineData("451 4.7.1 greylisted", 451, SmtpReplyClass.Transient)]
    [InlineData("550 5.1.1 user unknown", 550, SmtpReplyClass.Permanent)]
    [InlineData("554 no", 554, SmtpReplyClass.Permanent)]
    public void Classifies_by_first_digit(string raw, int code, SmtpReplyClass cls)
    {
        var r = SmtpReply.Parse(raw);
        Assert.Equal(code, r.Code);
        Assert.Equal(cls, r.Class);
        Assert.Equal(cls == SmtpReplyClass.Success, r.IsSuccess);
        Assert.Equal(cls == SmtpReplyClass.Transient, r.IsTransient);
        Assert.Equal(cls == SmtpReplyClass.Permanent, r.IsPermanent);
        Assert.False(r.IsNoReply);
    }

    [Fact]
    public void Parses_multi_line_replies()
    {
        var r = SmtpReply.Parse("550-5.1.1 The email account that you tried to reach does not exist.\r\n550-5.1.1 Please try\r\n550 5.1.1 https://support.example/answer x12si\r\n");
        Assert.Equal(550, r.Code);
        Assert.Equal(new EnhancedStatusCode(5, 1, 1), r.Enhanced);
        Assert.Equal(["5.1.1 The email account that you tried to reach does not exist.", "5.1.1 Please try", "5.1.1 https://support.example/answer x12si"], r.Lines);
        Assert.Equal("The email account that you tried to reach does not exist. Please try https://support.example/answer x12si", r.Message);
        Assert.Equal("550 5.1.1 The email account that you tried to reach does not exist. 5.1.1 Please try 5.1.1 https://support.example/answer x12si", r.DiagnosticText);
    }

    [Fact]
    public void Accepts_lf_only_and_bare_code()
    {
        var r = SmtpReply.Parse("250-mx.example\n250-PIPELINING\n250");
        Assert.Equal(["mx.example", "PIPELINING", ""], r.Lines);
        Assert.Null(r.Enhanced);
        Assert.Equal(new EnhancedStatusCode(2, 0, 0), r.Status);
    }

    [Theory]
    [InlineData("", "empty reply")]
    [InlineData("\r\n", "empty reply")]
    [InlineData("25 OK", "three-digit code")]
    [InlineData("abc OK", "three-digit code")]
    [InlineData("250-a\r\n251 b", "has code 251, expected 250")]
    [InlineData("250 a\r\n250 b", "not marked as continued")]
    [InlineData("250-a", "last line is marked as continued")]
    [InlineData("250xOK", "expected ' ' or '-'")]
    [InlineData("199 hm", "not an SMTP reply code")]
    [InlineData("600 hm", "not an SMTP reply code")]
    [InlineData("260 hm", "not an SMTP reply code")]
    public void Rejects_malformed_replies(string raw, string why)
    {
        Assert.False(SmtpReply.TryParse(raw, out _, out var error));
        Assert.Contains(why, error);
        Assert.Throws<FormatException>(() => SmtpReply.Parse(raw));
    }

    [Fact]
    public void Enhanced_code_class_must_match_the_reply_class()
    {
        // RFC 2034 §4: a 250 carrying "5.1.1" is not an enhanced status code.
        var r = SmtpReply.Parse("250 5.1.1 odd server");
        Assert.Null(r.Enhanced);
        Assert.Equal(new EnhancedStatusCode(2, 0, 0), r.Status);
        Assert.Equal(new EnhancedStatusCode(4, 0, 0), SmtpReply.Parse("421 busy").Status);
        Assert.Equal(new EnhancedStatusCode(5, 0, 0), SmtpReply.Parse("550 no").Status);
    }

    [Fact]
    public void Create_from_code_and_text_like_MailKit()
    {
        var r = SmtpReply.Create(452, "4.5.3 Too many recipients\nsecond line");
        Assert.Equal(452, r.Code);
        Assert.Equal(new EnhancedStatusCode(4, 5, 3), r.Enhanced);
        Assert.Equal(["4.5.3 Too many recipients", "second line"], r.Lines);
        Assert.Equal("452-4.5.3 Too many recipients\r\n452 second line\r\n", r.ToWireFormat());
        Assert.Equal(r, SmtpReply.Parse(r.ToWireFormat()));
        Assert.Equal([""], SmtpReply.Create(250, null).Lines);
        Assert.Throws<ArgumentOutOfRangeException>(() => SmtpReply.Create(600, "x"));
        Assert.Throws<ArgumentOutOfRangeException>(() => SmtpReply.Create(199, "x"));
    }

    [Fact]
    public void No_reply_is_transient_unless_a_permanent_status_is_given()
    {
        var timeout = SmtpReply.NoReply("timeout");
        Assert.True(timeout.IsNoReply);
        Assert.Equal(0, timeout.Code);
        Assert.True(timeout.IsTransient);
        Assert.Equal("timeout", timeout.DiagnosticText);
        var nx = SmtpReply.NoReply("DNS Hard Error looking up example.invalid (MX): NXDomain", EnhancedStatusCode.BadDestinationHost);
        Assert.True(nx.IsPermanent);
        Assert.Equal(new EnhancedStatusCode(5, 1, 2), nx.Status);
    }

    [Fact]
    public void Replies_compare_by_content()
    {
        Assert.Equal(SmtpReply.Parse("250-a\r\n250 b"), SmtpReply.Create(250, "a\nb"));
        Assert.NotEqual(SmtpReply.Parse("250 a"), SmtpReply.Parse("250 b"));
    }
}

public sealed class EnhancedStatusCodeTests
{
    [Theory]
    [InlineData("2.0.0", 2, 0, 0)]
    [InlineData("4.3.2", 4, 3, 2)]
    [InlineData("5.1.10", 5, 1, 10)]
    [InlineData("5.7.255", 5, 7, 255)]
    [InlineData("4.999.999", 4, 999, 999)]
    public void Parses(string text, int c, int s, int d)
    {
        Assert.True(EnhancedStatusCode.TryParse(text, out var code));
        Assert.Equal(new EnhancedStatusCode(c, s, d), code);
        Assert.Equal(text, code.ToString());
    }

    [Theory]
    [InlineData("3.0.0")]   // class must be 2, 4 or 5
    [InlineData("5.1")]
    [InlineData("5..1")]
    [InlineData("5.01.1")]  // no leading zeros (RFC 3463 §2)
    [InlineData("5.1.1000")]
    [InlineData("5.1.1x")]
    [InlineData("55.1.1")]
    [InlineData("")]
    public void Rejects(string text) => Assert.False(EnhancedStatusCode.TryParse(text, out _));

    [Theory]
    [InlineData("5.1.1 user unknown", true, 5)]
    [InlineData("4.3.2\ttry later", true, 5)]
    [InlineData("5.1.1", true, 5)]
    [InlineData("5.1.1user", false, 0)]
    [InlineData("user 5.1.1", false, 0)]
    public void Reads_at_the_start_of_text(string text, bool ok, int length)
    {
        Assert.Equal(ok, EnhancedStatusCode.TryParseAtStart(text, out _, out var n));
        Assert.Equal(length, n);
    }

    [Theory]
    [InlineData("4.3.2", "Not accepting messages at this time")]
    [InlineData("5.1.0", "Unknown address error")]
    [InlineData("5.1.2", "Bad destination host")]
    [InlineData("5.4.7", "Delivery expired (message too old)")]
    [InlineData("5.1.1", "Bad destination mailbox address")]
    [InlineData("4.4.1", "No answer from host")]
    [InlineData("5.7.1", "Delivery not authorized, message refused")]
    [InlineData("4.7.5", "Cryptographic failure")]
    [InlineData("2.0.0", "Success")]
    [InlineData("5.0.0", "Other or undefined status")]
    [InlineData("4.2.99", "Other or undefined mailbox status")]
    [InlineData("5.9.9", "Other or undefined status")]
    public void Describes(string code, string text) => Assert.Equal(text, EnhancedStatusCode.Parse(code).Description);

    [Fact]
    public void Parse_throws_on_garbage() => Assert.Throws<FormatException>(() => EnhancedStatusCode.Parse("x"));
}

public sealed class SmtpReplyFormatterTests
{
    [Fact]
    public void Vendor_deferral_shape()
    {
        // research §1.6: Delayed: … RID 0 - 4.3.2 - Not accepting messages at this time ('421', ['4.3.2 try again later'])
        Assert.Equal("4.3.2 - Not accepting messages at this time ('421', ['4.3.2 try again later'])",
            SmtpReplyFormatter.Format(SmtpReply.Parse("421 4.3.2 try again later")));
    }

    [Fact]
    public void Vendor_no_reply_shape()
    {
        Assert.Equal("('000', ['timeout'])", SmtpReplyFormatter.FormatReply(SmtpReply.NoReply("timeout")));
        Assert.Equal("5.4.7 - Delivery expired (message too old) ('000', ['timeout'])",
            SmtpReplyFormatter.Format(SmtpReply.NoReply("timeout"), EnhancedStatusCode.Expired));
    }

    [Theory]
    // status, reason, description (null = RFC 3463) → the one local-outcome form the engine logs and stores
    [InlineData("4.4.2", "connection reset", "Connection error", "4.4.2 - Connection error ('000', ['connection reset'])")]
    [InlineData("5.4.7", "expired", null, "5.4.7 - Delivery expired (message too old) ('000', ['expired'])")]
    [InlineData("4.4.3", null, "MTA-STS TXT lookup failed for the domain (a.example)", "4.4.3 - MTA-STS TXT lookup failed for the domain (a.example) ('000', [''])")]
    [InlineData("4.4.1", "it's down", "No answer from any hosts listed in MX", "4.4.1 - No answer from any hosts listed in MX ('000', [\"it's down\"])")]
    public void Local_outcomes_without_a_reply_have_one_form(string status, string? reason, string? description, string expected)
    {
        Assert.Equal(expected, SmtpReplyFormatter.NoReply(status, reason, description));
    }

    [Fact]
    public void Vendor_bounce_shape_with_explicit_status()
    {
        // Bounced: DCID 3 MID 4 to RID 0 - 5.1.0 - Unknown address error ('550', ['<george@yourdomain.com>... Relaying denied'])
        Assert.Equal("5.1.0 - Unknown address error ('550', ['<george@yourdomain.com>... Relaying denied'])",
            SmtpReplyFormatter.Format(SmtpReply.Parse("550 <george@yourdomain.com>... Relaying denied"), new EnhancedStatusCode(5, 1, 0)));
    }

    [Fact]
    public void Multi_line_reply_is_a_list()
    {
        Assert.Equal("('550', ['5.1.1 no such user', '5.1.1 see https://x'])",
            SmtpReplyFormatter.FormatReply(SmtpReply.Parse("550-5.1.1 no such user\r\n550 5.1.1 see https://x")));
    }

    [Fact]
    public void Without_enhanced_code_the_class_default_is_shown() =>
        Assert.Equal("4.0.0 - Other or undefined status ('452', ['busy'])", SmtpReplyFormatter.Format(SmtpReply.Parse("452 busy")));

    [Theory]
    [InlineData("it's full", "\"it's full\"")]
    [InlineData("say \"hi\" it's", "'say \"hi\" it\\'s'")]
    [InlineData(@"back\slash", @"'back\\slash'")]
    [InlineData("tab\there", @"'tab\there'")]
    [InlineData("bell\u0007", @"'bell\x07'")]
    public void Quotes_like_python(string line, string expected) =>
        Assert.Equal($"('550', [{expected}])", SmtpReplyFormatter.FormatReply(SmtpReply.Create(550, line)));

    [Fact]
    public void ToString_is_the_reply_form() => Assert.Equal("('250', ['OK'])", SmtpReply.Parse("250 OK").ToString());
}
