using MtaSts.Actors.Logging;
using MtaSts.Actors.TestInfra.Config;

namespace MtaSts.Actors.Smtp.Tests.Logging;

/// <summary>mtasts.log: text to standard output at Info by default; a bad level is an error naming its key.</summary>
public sealed class LogOptionsTests
{
    private static (LogOptions Options, List<string> Errors) Read(Dictionary<string, string> values) =>
        DictionaryConfigSource.Read("mtasts.log", LogOptions.Read, values);

    [Fact]
    public void Nothing_configured_logs_text_to_standard_output_at_info()
    {
        var (o, errors) = Read([]);
        Assert.Empty(errors);
        Assert.Equal(new LogOptions { Text = "-", Json = "", Level = MailLogLevel.Info }, o);
    }

    [Fact]
    public void Targets_and_level_are_read()
    {
        var (o, errors) = Read(new() { ["mtasts.log.text"] = "/var/log/mtasts.log", ["mtasts.log.json"] = "-", ["mtasts.log.level"] = "Debug" });
        Assert.Empty(errors);
        Assert.Equal(new LogOptions { Text = "/var/log/mtasts.log", Json = "-", Level = MailLogLevel.Debug }, o);
    }

    [Theory]
    [InlineData("verbose")]
    [InlineData("7")]
    public void A_bad_level_is_an_error_naming_the_key(string level)
    {
        var (o, errors) = Read(new() { ["mtasts.log.level"] = level });
        Assert.StartsWith($"mtasts.log.level = \"{level}\": expected one of debug, info, warning, critical", Assert.Single(errors));
        Assert.Equal(MailLogLevel.Info, o.Level);
    }
}
