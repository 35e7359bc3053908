using MtaSts.Actors.Dns;
using MtaSts.Actors.Policy.Parsing;

namespace MtaSts.Actors.Policy.Tests.Parsing;

/// <summary>RFC 8461 §3.1 TXT record vectors (research §3a, T01–T26; errata 6285).
/// T24 (CNAME chain) and T25 (SERVFAIL) are resolver concerns and tested with the resolver.</summary>
public sealed class StsTxtParserTests
{
    [Theory]
    [InlineData("T01", "v=STSv1; id=20160831085700Z;", "20160831085700Z")]
    [InlineData("T02", "v=STSv1; \t id=20160831085700Z  \t;", "20160831085700Z")]
    [InlineData("T03", "v=STSv1; id=a", "a")]
    [InlineData("T19", "v=STSv1 \t; \tid=policy1 \t;", "policy1")]
    [InlineData("E6285-wsp-before-semicolon", "v=STSv1 ;id=1", "1")]
    [InlineData("E6285-trailing-delim-wsp", "v=STSv1;id=1; \t", "1")]
    [InlineData("T-id-32-chars", "v=STSv1; id=01234567890123456789012345678901", "01234567890123456789012345678901")]
    [InlineData("T-id-mixed-case", "v=STSv1; id=AbC9", "AbC9")]
    public void Parse_valid_record_yields_id(string vector, string record, string expectedId)
    {
        var r = StsTxtParser.Parse(record);

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        Assert.Equal(expectedId, r.Value!.Id);
        Assert.Null(r.Error);
        Assert.Empty(r.Warnings);
    }

    [Fact]
    public void T04_extensions_are_kept_in_order_and_ignored()
    {
        var r = StsTxtParser.Parse("v=STSv1; id=a; more=a; ext=2");

        Assert.True(r.Ok, r.Error);
        Assert.Equal("a", r.Value!.Id);
        Assert.Equal([new("more", "a"), new("ext", "2")], r.Value.Extensions);
    }

    [Fact]
    public void Duplicate_id_first_wins_with_warning()
    {
        var r = StsTxtParser.Parse("v=STSv1; id=first; id=second");

        Assert.True(r.Ok, r.Error);
        Assert.Equal("first", r.Value!.Id);
        Assert.Equal(["offset 19: duplicate id 'second' ignored (first id 'first' wins)"], r.Warnings);
    }

    [Theory]
    [InlineData("T05-bare-version", "v=STSv1", "no 'id' field")]
    [InlineData("T05-version-and-delim", "v=STSv1;", "no 'id' field")]
    [InlineData("T06", "v=STSv1; id=", "offset 12: id '' is empty")]
    [InlineData("T07", "v=STSv1; id=012345678901234567890123456789012", "offset 12: id '012345678901234567890123456789012' is 33 characters long (at most 32)")]
    [InlineData("T08", "v=STSv1; id=test-123", "offset 12: id 'test-123' contains '-' (only ALPHA/DIGIT allowed)")]
    [InlineData("T09", "v=STSv1; id=a;;", "offset 14: empty field between ';' delimiters")]
    [InlineData("T10-empty-ext-value", "v=STSv1; id=a; more=", "offset 20: extension 'more' has an empty value")]
    [InlineData("T10-bad-ext-name", "v=STSv1; id=a; 1%=a", "offset 15: invalid field name '1%' (expected 'id' or an extension name of 1-32 ALPHA/DIGIT/'_'/'-'/'.', starting with ALPHA/DIGIT)")]
    [InlineData("T10-equals-in-value", "v=STSv1; id=a; test==", "offset 20: extension 'test' value contains '='")]
    [InlineData("T11-STSv2", "v=STSv2; id=1", "record does not begin with 'v=STSv1'")]
    [InlineData("T11-STSv0", "v=STSv0", "record does not begin with 'v=STSv1'")]
    [InlineData("T11-STSv10", "v=STSv10;id=1", "offset 7: 'v=STSv1' is followed by '0', not ';' (not an STSv1 record)")]
    [InlineData("T12", "id=20180907T090909; v=STSv1;", "record does not begin with 'v=STSv1'")]
    [InlineData("T13", "azazaza;asdasdasdasd", "record does not begin with 'v=STSv1'")]
    [InlineData("T17", "v=STSv1; bogus", "offset 9: field 'bogus' has no '='")]
    [InlineData("T20", "v=STSv1; id=policy1 ", "offset 20: trailing whitespace without ';'")]
    [InlineData("T21", "v=STSv1; id=policy1; note=has space;", "offset 30: expected ';' but found 's'")]
    [InlineData("T22", "v=STSv1; id=policy1; note=café;", "offset 29: non-US-ASCII character U+00E9 (RFC 8461 §3.1 records are US-ASCII)")]
    [InlineData("T23-upper-V", "V=STSv1; id=1", "record does not begin with 'v=STSv1' (the version tag is case-sensitive, got 'V=STSv1')")]
    [InlineData("T23-lower-stsv1", "v=stsv1; id=1", "record does not begin with 'v=STSv1' (the version tag is case-sensitive, got 'v=stsv1')")]
    [InlineData("T-id-key-case", "v=STSv1; ID=1", "no 'id' field (field names are case-sensitive)")]
    [InlineData("T-no-delim-after-version", "v=STSv1 id=1", "offset 8: 'v=STSv1' is followed by 'i', not ';' (not an STSv1 record)")]
    [InlineData("T-leading-space", " v=STSv1; id=1", "record does not begin with 'v=STSv1'")]
    [InlineData("T-nul-after-id", "v=STSv1; id=1\0", "offset 12: id '1\\u0000' contains U+0000 (only ALPHA/DIGIT allowed)")]
    [InlineData("T-nul-after-delim", "v=STSv1; id=1;\0", "offset 14: field '\\u0000' has no '='")]
    [InlineData("T-empty", "", "record does not begin with 'v=STSv1'")]
    public void Parse_invalid_record_fails_with_reason(string vector, string record, string expectedError)
    {
        var r = StsTxtParser.Parse(record);

        Assert.False(r.Ok, vector);
        Assert.Null(r.Value);
        Assert.Equal(expectedError, r.Error);
    }

    // Each element is one TXT RR; '|' separates the strings of a multi-string RR.
    [Theory]
    [InlineData("T14", new[] { "v=STSv1; id=1", "bogus" }, "1", 1)]
    [InlineData("T18", new[] { "v=STSv1; id=|policy1;" }, "policy1", 0)]
    [InlineData("T18-split-inside-version", new[] { "v=STS|v1; id=|1" }, "1", 0)]
    [InlineData("T11-STSv10-discarded", new[] { "v=STSv10;id=1", "v=STSv1; id=2" }, "2", 1)]
    [InlineData("E6285-wsp-before-semicolon", new[] { "v=STSv1 ;id=3", "v=spf1 -all" }, "3", 1)]
    [InlineData("E6285-no-semicolon-discarded", new[] { "v=STSv1 id=1", "v=STSv1; id=2" }, "2", 1)]
    [InlineData("T23-discarded", new[] { "V=STSv1; id=1", "v=STSv1; id=4" }, "4", 1)]
    // §3.1: a bare "v=STSv1" does not begin with "v=STSv1;" and is discarded; the other record applies.
    [InlineData("bare-version-discarded", new[] { "v=STSv1", "v=STSv1; id=1" }, "1", 1)]
    [InlineData("bare-version-wsp-discarded", new[] { "v=STSv1; id=1", "v=STSv1 " }, "1", 1)]
    public void Select_picks_the_single_STSv1_record(string vector, string[] rrs, string expectedId, int discarded)
    {
        var r = StsTxtParser.Select(Rrs(rrs));

        Assert.True(r.Ok, $"{vector}: {r.Error}");
        Assert.Equal(expectedId, r.Value!.Id);
        if (discarded == 0)
            Assert.Empty(r.Warnings);
        else
            Assert.Equal([$"discarded {discarded} TXT record{(discarded == 1 ? "" : "s")} not beginning with v=STSv1"], r.Warnings);
    }

    [Theory]
    [InlineData("T15", new[] { "bogus", "more" }, "no v=STSv1 TXT record (2 other TXT records discarded)")]
    [InlineData("T16", new[] { "v=STSv1; id=1", "v=STSv1; id=2" }, "multiple v=STSv1 TXT records (2)")]
    [InlineData("T16-same-id", new[] { "v=STSv1; id=1", "v=STSv1; id=1" }, "multiple v=STSv1 TXT records (2)")]
    [InlineData("T16-invalid-one-still-counts", new[] { "v=STSv1; bogus", "v=STSv1; id=1", "x" }, "multiple v=STSv1 TXT records (2)")]
    [InlineData("T05", new[] { "v=STSv1" }, "no v=STSv1 TXT record (1 other TXT record discarded)")]
    [InlineData("T17", new[] { "v=STSv1; bogus" }, "offset 9: field 'bogus' has no '='")]
    [InlineData("T23", new[] { "v=stsv1; id=1" }, "no v=STSv1 TXT record (1 other TXT record discarded)")]
    [InlineData("T11", new[] { "v=STSv2; id=1", "v=STSv0", "v=STSv10;id=1" }, "no v=STSv1 TXT record (3 other TXT records discarded)")]
    [InlineData("T26", new string[0], "no TXT records")]
    public void Select_without_exactly_one_valid_record_fails(string vector, string[] rrs, string expectedError)
    {
        var r = StsTxtParser.Select(Rrs(rrs));

        Assert.False(r.Ok, vector);
        Assert.Equal(expectedError, r.Error);
    }

    [Theory]
    [InlineData("v=STSv1", false)]
    [InlineData("v=STSv1;", true)]
    [InlineData("v=STSv1 \t;id=1", true)]
    [InlineData("v=STSv1 ", false)]
    [InlineData("v=STSv10;id=1", false)]
    [InlineData("v=STSv1 id=1", false)]
    [InlineData("V=STSv1;", false)]
    [InlineData("", false)]
    public void E6285_IsStsV1_discard_rule(string record, bool expected) =>
        Assert.Equal(expected, StsTxtParser.IsStsV1(record));

    private static List<TxtRecord> Rrs(string[] rrs) => rrs.Select(rr => new TxtRecord(rr.Split('|'))).ToList();
}
