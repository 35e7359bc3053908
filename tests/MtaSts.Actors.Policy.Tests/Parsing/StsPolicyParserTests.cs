using System.Text;
using MtaSts.Actors.Policy.Parsing;

namespace MtaSts.Actors.Policy.Tests.Parsing;

/// <summary>RFC 8461 §3.2 policy body vectors (research §3b, P01–P38; errata 6253, 7282).</summary>
public sealed class StsPolicyParserTests
{
    private const string Head = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n";

    // mx is a comma-joined list of the expected patterns in order ("" = none).
    [Theory]
    [InlineData("P01", "version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: mx2.example.com\nmx: mx.backup-example.com\nmax_age: 1296000\n",
        StsMode.Testing, "mx1.example.com,mx2.example.com,mx.backup-example.com", 1296000L)]
    [InlineData("P02", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n",
        StsMode.Enforce, "mail.example.com", 604800L)]
    [InlineData("P04", "version: STSv1\nmode: enforce\t\nmx: *.example.com \nmax_age: 0 \n",
        StsMode.Enforce, "*.example.com", 0L)]
    [InlineData("P05", "version: STSv1 \nmode: enforce\nmx: mail.example.com\r\nmx:\t*.example.net\nmx: backupmx.example.com\nmax_age: 604800",
        StsMode.Enforce, "mail.example.com,*.example.net,backupmx.example.com", 604800L)]
    [InlineData("P12", "version: STSv1\nmode: none\nmax_age: 86400\n", StsMode.None, "", 86400L)]
    [InlineData("P12-none-with-mx", "version: STSv1\nmode: none\nmx: a.example\nmax_age: 5\n", StsMode.None, "a.example", 5L)]
    [InlineData("P22", "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 86400", StsMode.Enforce, "a.example", 86400L)]
    [InlineData("P23", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\nmax_age: 60", StsMode.Enforce, "a.example", 86400L)]
    [InlineData("P24", "version: STSv1\nversion: STSv2\nmode: none\nmax_age: 1", StsMode.None, "", 1L)]
    [InlineData("E6253-LF", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 7\n", StsMode.Enforce, "a.example", 7L)]
    [InlineData("E6253-CRLF", "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 7\r\n", StsMode.Enforce, "a.example", 7L)]
    [InlineData("E6253-mixed-no-final-EOL", "version: STSv1\r\nmode: enforce\nmx: a.example\r\nmax_age: 7", StsMode.Enforce, "a.example", 7L)]
    [InlineData("E7282-limit-exact", "version: STSv1\nmode: none\nmax_age: 31557600\n", StsMode.None, "", 31557600L)]
    [InlineData("E7282-ten-digits-leading-zeros", "version: STSv1\nmode: none\nmax_age: 0000000042\n", StsMode.None, "", 42L)]
    [InlineData("X23-mx-lowercased", "version: STSv1\nmode: enforce\nmx: MAIL.Example.COM\nmx: *.Example.NET\nmax_age: 1\n", StsMode.Enforce, "mail.example.com,*.example.net", 1L)]
    [InlineData("P-mx-duplicates-collapse", "version: STSv1\nmode: enforce\nmx: a.example\nmx: A.example\nmx: b.example\nmax_age: 1\n", StsMode.Enforce, "a.example,b.example", 1L)]
    [InlineData("P-mx-a-label", "version: STSv1\nmode: enforce\nmx: x.xn--aca-6ma.com\nmax_age: 1\n", StsMode.Enforce, "x.xn--aca-6ma.com", 1L)]
    [InlineData("P-mx-single-label-and-tld-wildcard", "version: STSv1\nmode: testing\nmx: localhost\nmx: *.com\nmax_age: 1\n", StsMode.Testing, "localhost,*.com", 1L)]
    [InlineData("P-key-order-free", "max_age: 3\nmx: a.example\nmode: testing\nversion: STSv1", StsMode.Testing, "a.example", 3L)]
    public void Valid_policy_without_warnings(string vector, string body, StsMode mode, string mx, long maxAge)
    {
        var r = StsPolicyParser.Parse(body);

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        AssertPolicy(r.Value!, mode, mx, maxAge);
        if (vector is not ("P22" or "P23" or "P24"))
            Assert.Empty(r.Warnings);
    }

    [Theory]
    [InlineData("P22", "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 86400", "line 3: duplicate 'mode' ignored (first one wins, RFC 8461 §3.2)")]
    [InlineData("P23", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\nmax_age: 60", "line 5: duplicate 'max_age' ignored (first one wins, RFC 8461 §3.2)")]
    [InlineData("P24", "version: STSv1\nversion: STSv2\nmode: none\nmax_age: 1", "line 2: duplicate 'version' ignored (first one wins, RFC 8461 §3.2)")]
    public void Duplicate_keys_first_wins_with_warning(string vector, string body, string warning)
    {
        var r = StsPolicyParser.Parse(body);

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        Assert.Equal([warning], r.Warnings);
    }

    [Fact]
    public void P03_no_space_tabs_mixed_eol_no_final_eol_extension_kept()
    {
        var r = StsPolicyParser.Parse("version:STSv1\r\nmode:\tenforce\r\nmx:  \t\t *.example.com\nmax_age: 1\nmore:ext e  ns ion");

        Assert.True(r.Ok, r.Error);
        AssertPolicy(r.Value!, StsMode.Enforce, "*.example.com", 1);
        Assert.Equal([new("more", "ext e  ns ion")], r.Value!.Extensions);
        Assert.Empty(r.Warnings);
    }

    [Theory]
    [InlineData("P25", "min_age: 300", "min_age", "300")]
    [InlineData("P28", "comment: café au lait", "comment", "café au lait")]
    [InlineData("P29", "comment: see https://example.com/x", "comment", "see https://example.com/x")]
    [InlineData("P-ext-max-name", "a2345678901234567890123456789012: v", "a2345678901234567890123456789012", "v")]
    [InlineData("P-ext-name-punct", "x_a-b.c: 1", "x_a-b.c", "1")]
    [InlineData("P-ext-trailing-wsp", "note: x y \t", "note", "x y")]
    public void Extension_is_kept_and_ignored(string vector, string line, string key, string value)
    {
        var r = StsPolicyParser.Parse(Head + line + "\n");

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        AssertPolicy(r.Value!, StsMode.Enforce, "mail.example.com", 86400);
        Assert.Equal([new(key, value)], r.Value!.Extensions);
    }

    [Fact]
    public void Duplicate_extension_first_wins()
    {
        var r = StsPolicyParser.Parse(Head + "note: one\nnote: two\n");

        Assert.True(r.Ok, r.Error);
        Assert.Equal([new("note", "one")], r.Value!.Extensions);
        Assert.Equal(["line 6: duplicate 'note' ignored (first one wins, RFC 8461 §3.2)"], r.Warnings);
    }

    [Theory]
    [InlineData("P20", "31557601")]
    [InlineData("P21", "9999999999")]
    public void E7282_max_age_above_limit_is_clamped_with_warning(string vector, string value)
    {
        var r = StsPolicyParser.Parse($"version: STSv1\nmode: testing\nmx: a.example\nmax_age: {value}\n");

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        Assert.Equal(31_557_600L, r.Value!.MaxAgeSeconds);
        Assert.Equal([$"line 4: max_age {value} above 31557600, clamped"], r.Warnings);
    }

    [Theory]
    [InlineData("P31-LF", Head + "\n", 1)]
    [InlineData("P31-CRLF", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n\r\n", 1)]
    [InlineData("P31-several-and-wsp", Head + "\n \t\n\n", 3)]
    [InlineData("P31-wsp-line-no-final-eol", Head + "  ", 1)]
    public void P31_trailing_blank_lines_are_ignored_with_warning(string vector, string body, int blank)
    {
        var r = StsPolicyParser.Parse(body);

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        AssertPolicy(r.Value!, StsMode.Enforce, "mail.example.com", 86400);
        Assert.Equal([$"ignored {blank} blank line{(blank == 1 ? "" : "s")} at the end of the policy"], r.Warnings);
    }

    [Fact]
    public void P32_one_leading_BOM_is_stripped_with_warning()
    {
        var r = StsPolicyParser.Parse("\uFEFF" + Head);

        Assert.True(r.Ok, r.Error);
        AssertPolicy(r.Value!, StsMode.Enforce, "mail.example.com", 86400);
        Assert.Equal(["stripped a leading UTF-8 byte order mark"], r.Warnings);
    }

    [Fact]
    public void P32_BOM_in_raw_bytes_is_stripped_too()
    {
        var r = StsPolicyParser.Parse([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(Head)]);

        Assert.True(r.Ok, r.Error);
        Assert.Equal(["stripped a leading UTF-8 byte order mark"], r.Warnings);
    }

    [Fact]
    public void P32_second_BOM_is_not_stripped()
    {
        var r = StsPolicyParser.Parse("\uFEFF\uFEFF" + Head);

        Assert.False(r.Ok);
        Assert.StartsWith("line 1: invalid key '\\uFEFFversion'", r.Error);
        Assert.Equal(["stripped a leading UTF-8 byte order mark"], r.Warnings);
    }

    [Theory]
    [InlineData("P38-loopback", "127.0.0.1")]
    [InlineData("P38-ipv4", "1.2.3.4")]
    [InlineData("P38-wildcard-ipv4", "*.1.2.3.4")]
    [InlineData("P38-address-literal", "[192.0.2.1]")]
    [InlineData("P38-ipv6", "2001:db8::1")]
    public void P38_ip_literal_mx_is_ignored_with_warning(string vector, string literal)
    {
        var r = StsPolicyParser.Parse($"version: STSv1\nmode: enforce\nmx: {literal}\nmx: mail.example.com\nmax_age: 86400\n");

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        AssertPolicy(r.Value!, StsMode.Enforce, "mail.example.com", 86400);
        Assert.Equal([$"line 3: mx '{literal}' is an IP literal, not a host name; pattern ignored"], r.Warnings);
    }

    [Fact]
    public void Mx_trailing_dot_is_removed_with_warning()
    {
        var r = StsPolicyParser.Parse("version: STSv1\nmode: enforce\nmx: Mail.Example.com.\nmax_age: 1\n");

        Assert.True(r.Ok, r.Error);
        AssertPolicy(r.Value!, StsMode.Enforce, "mail.example.com", 1);
        Assert.Equal(["line 3: mx 'Mail.Example.com.': trailing dot removed"], r.Warnings);
    }

    [Theory]
    [InlineData("P06-empty", "", "policy body is empty")]
    [InlineData("P06-garbage", "garbage", "line 1: no ':' (expected 'key: value')")]
    [InlineData("P07-STSv2", "version:STSv2\nmode:none\nmax_age:0", "line 1: version value 'STSv2' is not STSv1")]
    [InlineData("P07-STSv0", "version:STSv0\nmode:none\nmax_age:0", "line 1: version value 'STSv0' is not STSv1")]
    [InlineData("P07-STSv10", "version:STSv10\nmode:none\nmax_age:0", "line 1: version value 'STSv10' is not STSv1")]
    [InlineData("P07-lowercase", "version: stsv1\nmode:none\nmax_age:0", "line 1: version value 'stsv1' is not STSv1")]
    [InlineData("P08", "max_age:0\nmode:none", "missing required key 'version'")]
    [InlineData("P09", "version:STSv1\nmax_age:0\nmx:example.com", "missing required key 'mode'")]
    [InlineData("P10", "version:STSv1\nmode:none", "missing required key 'max_age'")]
    [InlineData("P11-enforce", "version: STSv1\nmode: enforce\nmax_age: 86400", "mode enforce requires at least one mx")]
    [InlineData("P11-testing", "version: STSv1\nmode: testing\nmax_age: 86400", "mode testing requires at least one mx")]
    [InlineData("P11-upper-MX", "version: STSv1\nmode: testing\nMX: a.example\nmax_age: 86400", "mode testing requires at least one mx (found 'MX'; keys are case-sensitive)")]
    [InlineData("P13", "version: STSv1\nmode: enforce\nnmx: mx0.sc-host.de\nmax_age: 604800", "mode enforce requires at least one mx")]
    [InlineData("P14", "version: STSv1\nmode: doubt\nmx: mail.loc\nmax_age: 86400", "line 2: mode value 'doubt' is not one of enforce|testing|none")]
    [InlineData("P15", "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 86400", "line 2: mode value 'Enforce' is not one of enforce|testing|none")]
    [InlineData("P16", "Version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400", "missing required key 'version' (found 'Version'; keys are case-sensitive)")]
    [InlineData("P17", "version: STSv1\nmode none\nmx: *.mimecast.com\nmax_age: 604800", "line 2: no ':' (expected 'key: value')")]
    [InlineData("P18-letters", "version: STSv1\nmode: none\nmax_age: xxx", "line 3: max_age value 'xxx' is not 1 to 10 digits")]
    [InlineData("P18-empty", "version: STSv1\nmode: none\nmax_age:", "line 3: max_age value '' is not 1 to 10 digits")]
    [InlineData("P18-negative", "version: STSv1\nmode: none\nmax_age: -1", "line 3: max_age value '-1' is not 1 to 10 digits")]
    [InlineData("P18-plus", "version: STSv1\nmode: none\nmax_age: +1", "line 3: max_age value '+1' is not 1 to 10 digits")]
    [InlineData("P18-inner-space", "version: STSv1\nmode: none\nmax_age: 86 400", "line 3: max_age value '86 400' is not 1 to 10 digits")]
    [InlineData("P19", "version: STSv1\nmode: none\nmax_age:01234567890", "line 3: max_age value '01234567890' is not 1 to 10 digits")]
    [InlineData("P30", "version: STSv1\n\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n", "line 2: blank line")]
    [InlineData("P30-wsp-only", "version: STSv1\nmode: enforce\n \t\nmx: mail.example.com\nmax_age: 86400\n", "line 3: blank line")]
    [InlineData("P30-leading-blank", "\nversion: STSv1\nmode: none\nmax_age: 1\n", "line 1: blank line")]
    [InlineData("P-only-newline", "\n", "line 1: blank line")]
    [InlineData("P-space-before-colon", "version: STSv1\nmode : enforce\nmx: a.example\nmax_age: 1", "line 2: invalid key 'mode ' (expected version, mode, max_age, mx or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)")]
    [InlineData("P-leading-space-key", "version: STSv1\n mode: enforce\nmx: a.example\nmax_age: 1", "line 2: invalid key ' mode' (expected version, mode, max_age, mx or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)")]
    [InlineData("P-duplicate-with-control-char", "version: STSv1\nmode: none\nmode: x\u0001y\nmax_age: 1", "line 3: mode value contains U+0001")]
    public void Invalid_policy_fails_with_reason(string vector, string body, string expectedError)
    {
        var r = StsPolicyParser.Parse(body);

        Assert.False(r.Ok, vector);
        Assert.Null(r.Value);
        Assert.Equal(expectedError, r.Error);
    }

    [Theory]
    [InlineData("P26-underscore-first", "_bad:test", "line 5: invalid key '_bad' (expected version, mode, max_age, mx or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)")]
    [InlineData("P26-33-char-key", "a23456789012345678901234567890123: v", "line 5: invalid key 'a23456789012345678901234567890123' (expected version, mode, max_age, mx or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)")]
    [InlineData("P26-space-in-key", "bad name: ok", "line 5: invalid key 'bad name' (expected version, mode, max_age, mx or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)")]
    [InlineData("P26-non-ascii-key", "café: ok", "line 5: invalid key 'café' (expected version, mode, max_age, mx or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)")]
    [InlineData("P27-tab", "x-report: ok\tbad", "line 5: extension 'x-report' value contains U+0009")]
    [InlineData("P27-nul", "x-report: ok\0bad", "line 5: extension 'x-report' value contains U+0000")]
    [InlineData("P27-cr", "x-report: ok\rbad", "line 5: extension 'x-report' value contains U+000D")]
    [InlineData("P27-del", "x-report: ok\u007Fbad", "line 5: extension 'x-report' value contains U+007F")]
    [InlineData("P27-replacement-char", "x-report: ok\uFFFDbad", "line 5: extension 'x-report' value contains U+FFFD (invalid UTF-8 in the body)")]
    [InlineData("P27-c1-control", "x-report: ok\u0085bad", "line 5: extension 'x-report' value contains U+0085")]
    [InlineData("P-ext-empty-value", "note:", "line 5: extension 'note' value is empty")]
    [InlineData("P-ext-wsp-only-value", "note: \t ", "line 5: extension 'note' value is empty")]
    public void P26_P27_extension_abnf_is_enforced(string vector, string line, string expectedError)
    {
        var r = StsPolicyParser.Parse(Head + line + "\n");

        Assert.False(r.Ok, vector);
        Assert.Equal(expectedError, r.Error);
    }

    [Theory]
    [InlineData("P36-double-wildcard", "*.*.example", "has '*' other than as the whole left-most label ('*.')")]
    [InlineData("P36-star-star", "**.example", "has '*' other than as the whole left-most label ('*.')")]
    [InlineData("P36-star-star-hyphen", "**.example-", "has '*' other than as the whole left-most label ('*.')")]
    [InlineData("P36-trailing-hyphen", "test.example-", "has label 'example-' that does not start and end with a letter or digit")]
    [InlineData("P36-empty", "", "is empty")]
    [InlineData("P36-inner-wildcard", "abc.*.com", "has '*' other than as the whole left-most label ('*.')")]
    [InlineData("P36-partial-wildcard", "mx*.example.com", "has '*' other than as the whole left-most label ('*.')")]
    [InlineData("P36-bare-star", "*", "has '*' other than as the whole left-most label ('*.')")]
    [InlineData("P36-leading-dot-X10", ".aa.b.cc.com", "has an empty label")]
    [InlineData("P36-double-dot", "mail..example.com", "has an empty label")]
    [InlineData("P36-underscore", "mail_1.example.com", "has label 'mail_1' with character '_'")]
    [InlineData("P36-two-names", "a.example b.example", "has label 'example b' with character U+0020")]
    [InlineData("P36-long-label", "a234567890123456789012345678901234567890123456789012345678901234.example", "has a label longer than 63 characters")]
    [InlineData("P36-punycode-control-char", "xn--a.example", "has label 'xn--a' that is not a valid A-label (bad Punycode)")]
    [InlineData("P36-bad-punycode", "mx.xn--zz", "has label 'xn--zz' that is not a valid A-label (bad Punycode)")]
    [InlineData("P37", "møx.example", "is not an A-label domain (non-ASCII character U+00F8; RFC 8461 §3.2 requires A-labels)")]
    public void P36_P37_invalid_mx_pattern(string vector, string mx, string why)
    {
        var r = StsPolicyParser.Parse($"version: STSv1\nmode: enforce\nmx: a.example\nmx: {mx}\nmax_age: 86400\n");

        Assert.False(r.Ok, vector);
        Assert.Equal($"line 4: mx value '{mx}' {why}", r.Error);
    }

    [Fact]
    public void P36_mx_longer_than_253_characters_is_invalid()
    {
        var name = string.Join('.', Enumerable.Repeat(new string('a', 63), 4)); // 255 characters
        var r = StsPolicyParser.Parse($"version: STSv1\nmode: enforce\nmx: {name}\nmax_age: 1\n");

        Assert.Equal($"line 3: mx value '{name}' is longer than 253 characters", r.Error);
    }

    [Fact]
    public void P38_only_ip_literal_mx_in_enforce_is_invalid()
    {
        var r = StsPolicyParser.Parse("version: STSv1\nmode: enforce\nmx: 127.0.0.1\nmax_age: 86400\n");

        Assert.False(r.Ok);
        Assert.Equal("mode enforce requires at least one mx host name pattern (1 IP-literal mx ignored)", r.Error);
        Assert.Equal(["line 3: mx '127.0.0.1' is an IP literal, not a host name; pattern ignored"], r.Warnings);
    }

    [Fact]
    public void P38_ip_literal_only_with_mode_none_is_valid()
    {
        var r = StsPolicyParser.Parse("version: STSv1\nmode: none\nmx: 10.0.0.1\nmax_age: 60\n");

        Assert.True(r.Ok, r.Error);
        AssertPolicy(r.Value!, StsMode.None, "", 60);
    }

    [Fact]
    public void Numeric_name_that_is_not_a_dotted_quad_is_a_name()
    {
        var r = StsPolicyParser.Parse("version: STSv1\nmode: enforce\nmx: 1.2.3\nmx: 1.2.3.4.5\nmax_age: 60\n");

        Assert.True(r.Ok, r.Error);
        AssertPolicy(r.Value!, StsMode.Enforce, "1.2.3,1.2.3.4.5", 60);
        Assert.Empty(r.Warnings);
    }

    [Fact]
    public void P33_body_of_64KiB_plus_2_bytes_is_invalid()
    {
        var body = Head + "note: " + new string('a', StsPolicyParser.MaxBodyBytes + 2 - Head.Length - "note: ".Length);
        Assert.Equal(StsPolicyParser.MaxBodyBytes + 2, Encoding.UTF8.GetByteCount(body));

        var r = StsPolicyParser.Parse(body);

        Assert.False(r.Ok);
        Assert.Equal("policy body is 65538 bytes (limit 65536)", r.Error);
    }

    [Fact]
    public void P33_body_of_exactly_64KiB_is_accepted()
    {
        var body = Head + "note: " + new string('a', StsPolicyParser.MaxBodyBytes - Head.Length - "note: ".Length);
        Assert.Equal(StsPolicyParser.MaxBodyBytes, body.Length);

        var r = StsPolicyParser.Parse(body);

        Assert.True(r.Ok, r.Error);
    }

    [Fact]
    public void P33_limit_counts_UTF8_bytes_not_chars()
    {
        // 'é' is two bytes: the string is below 64 Ki chars but above 64 KiB.
        var body = Head + "note: " + new string('é', 33_000);
        Assert.True(body.Length < StsPolicyParser.MaxBodyBytes);

        var r = StsPolicyParser.Parse(body);

        Assert.Equal($"policy body is {Encoding.UTF8.GetByteCount(body)} bytes (limit 65536)", r.Error);
    }

    [Fact]
    public void P34_valid_policy_followed_by_2049_x_64_bytes_is_invalid()
    {
        var tail = string.Concat(Enumerable.Repeat(new string('a', 64), 2049));
        var body = Head + tail;

        Assert.Equal($"policy body is {Head.Length + 2049 * 64} bytes (limit 65536)", StsPolicyParser.Parse(body).Error);
        Assert.Equal($"policy body is {Head.Length + 2049 * 64} bytes (limit 65536)", StsPolicyParser.Parse(Encoding.UTF8.GetBytes(body)).Error);
    }

    [Fact]
    public void P35_oversized_raw_body_is_rejected_on_length()
    {
        var r = StsPolicyParser.Parse(new byte[131_193]);

        Assert.Equal("policy body is 131193 bytes (limit 65536)", r.Error);
    }

    [Fact]
    public void P27_invalid_UTF8_bytes_are_rejected_by_the_byte_overload()
    {
        var bytes = Encoding.UTF8.GetBytes(Head + "x-report: ok").Concat(new byte[] { 0xFF }).Concat(Encoding.UTF8.GetBytes("bad\n")).ToArray();

        var r = StsPolicyParser.Parse(bytes);

        Assert.Equal($"policy body is not valid UTF-8 (byte offset {Head.Length + "x-report: ok".Length})", r.Error);
    }

    [Fact]
    public void P28_valid_UTF8_bytes_are_decoded()
    {
        var r = StsPolicyParser.Parse(Encoding.UTF8.GetBytes(Head + "comment: café au lait\n"));

        Assert.True(r.Ok, r.Error);
        Assert.Equal([new("comment", "café au lait")], r.Value!.Extensions);
    }

    [Fact]
    public void Failure_keeps_earlier_warnings()
    {
        var r = StsPolicyParser.Parse("\uFEFFversion: STSv1\nmode: enforce\nmode: none\nmax_age: 1\n");

        Assert.Equal("mode enforce requires at least one mx", r.Error);
        Assert.Equal(["stripped a leading UTF-8 byte order mark", "line 3: duplicate 'mode' ignored (first one wins, RFC 8461 §3.2)"], r.Warnings);
    }

    private static void AssertPolicy(StsPolicy p, StsMode mode, string mx, long maxAge)
    {
        Assert.Equal(mode, p.Mode);
        Assert.Equal(mx, string.Join(",", p.Mx.Select(m => m.Pattern)));
        Assert.Equal(maxAge, p.MaxAgeSeconds);
    }
}
