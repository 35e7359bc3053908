using MtaSts.Actors.Dns;
using MtaSts.Actors.TlsRpt;

namespace MtaSts.Actors.TlsRpt.Tests;

public sealed class RecordParserTests
{
    [Fact]
    public void One_mailto() // R01 (sys4 test_parse_tlsrpt_record)
    {
        var (r, e) = TlsRptRecordParser.Parse("v=TLSRPTv1;rua=mailto:reports@example.com");
        Assert.Null(e);
        Assert.Equal(["reports@example.com"], r!.MailtoAddresses);
        Assert.Empty(r.HttpsEndpoints);
    }

    [Fact]
    public void Mailto_and_https_with_whitespace() // R02 (mox tlsrpt/parse_test.go)
    {
        var (r, e) = TlsRptRecordParser.Parse("v=TLSRPTv1; rua=mailto:tlsrpt@mox.example , \t\t https://mox.example/tlsrpt  ");
        Assert.Null(e);
        Assert.Equal(["tlsrpt@mox.example"], r!.MailtoAddresses);
        Assert.Equal("https://mox.example/tlsrpt", Assert.Single(r.HttpsEndpoints).ToString());
    }

    [Fact]
    public void Three_uris_port_kept_final_semicolon() // R03
    {
        var (r, e) = TlsRptRecordParser.Parse("v=TLSRPTv1;rua=mailto:a@example.com,mailto:b@example.com,https://reportbot.example.com:12345/tlsrpt;");
        Assert.Null(e);
        Assert.Equal(3, r!.Rua.Count);
        Assert.Equal(12345, r.HttpsEndpoints.Single().Port);
    }

    [Fact]
    public void Several_rua_fields_are_merged_and_extensions_ignored() // R05
    {
        var (r, e) = TlsRptRecordParser.Parse("v=TLSRPTv1 ; rua=mailto:x@x.example; ext=1; rua=mailto:y@x.example");
        Assert.Null(e);
        Assert.Equal(["x@x.example", "y@x.example"], r!.MailtoAddresses);
    }

    [Fact]
    public void Unknown_scheme_is_ignored_when_another_uri_is_usable()
    {
        var (r, e) = TlsRptRecordParser.Parse("v=TLSRPTv1; rua=http://insecure.example/x,mailto:a@example.com");
        Assert.Null(e);
        Assert.Single(r!.Rua);
        Assert.Single(r.Warnings);
    }

    [Theory] // R04 and friends
    [InlineData("v=TLSRPTv99; rua=mailto:a@example.com")]
    [InlineData("v=TLSRPTv2; rua=mailto:a@example.com")]
    [InlineData("not a tlsrpt record")]
    [InlineData("v=TLSRPTv1")]
    [InlineData("v=TLSRPTv1;")]
    [InlineData("v=TLSRPTv1; rua=")]
    [InlineData("v=TLSRPTv1; rua=noscheme")]
    [InlineData("v=TLSRPTv1; rua=,, ,")]
    [InlineData("v=TLSRPTv1; rua=http://bad/%")]
    [InlineData("v=TLSRPTv1; rua=http://only-http.example/")]
    [InlineData("rua=mailto:a@example.com; v=TLSRPTv1")]
    [InlineData("V=TLSRPTv1; rua=mailto:a@example.com")]
    [InlineData("v=TLSRPTv1; rua=mailto:not-an-address")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com;;")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com; bad name=1")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com; x=")]
    [InlineData("v=TLSRPTv1; rua=mailto:a!b@example.com")]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com x")]
    [InlineData("v=TLSRPTv1; rua=mailto:caf\u00e9@example.com")]
    public void Invalid_records(string record)
    {
        var (r, e) = TlsRptRecordParser.Parse(record);
        Assert.Null(r);
        Assert.NotNull(e);
    }

    [Fact]
    public void Selection_discards_other_txt_and_refuses_two() // R06
    {
        TxtRecord T(params string[] s) => new(s);
        Assert.NotNull(TlsRptRecordParser.Select([T("v=TLSRPTv1; rua=mailto:a@example.com"), T("other")]).Record);
        var (none, e) = TlsRptRecordParser.Select([T("v=TLSRPTv1; rua=mailto:a@example.com"), T("v=TLSRPTv1; rua=mailto:b@example.com")]);
        Assert.Null(none);
        Assert.Contains("exactly one", e);
        // one RR split in two strings: concatenated without a space
        Assert.NotNull(TlsRptRecordParser.Select([T("v=TLSRPTv1; rua=mailto:a@exa", "mple.com")]).Record);
        Assert.Null(TlsRptRecordParser.Select([T("v=spf1 -all")]).Record);
    }
}
