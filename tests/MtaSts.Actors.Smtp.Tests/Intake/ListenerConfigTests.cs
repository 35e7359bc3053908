using System.Net;
using MtaSts.Actors.Configuration;
using MtaSts.Actors.Smtp.Intake;
using MtaSts.Actors.TestInfra.Config;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>mtasts.listener read through the shared <see cref="ConfigSection"/>: the defaults are the listener's own,
/// every bad value is an error naming its full key.</summary>
public sealed class ListenerConfigTests
{
    private static (ListenerConfig Config, List<string> Errors) Read(Dictionary<string, string> values, Dictionary<string, string[]>? lists = null) =>
        DictionaryConfigSource.Read("mtasts.listener", ListenerConfig.Read, values, lists);

    [Fact]
    public void Nothing_configured_gives_the_listeners_own_defaults()
    {
        var (c, errors) = Read([]);
        Assert.Empty(errors);
        var d = new SmtpListenerOptions();
        Assert.Equal(d.Endpoints, c.Options.Endpoints);
        Assert.Equal(d.RelayNetworks, c.Options.RelayNetworks);
        // The rest compares by value once the two lists are the same instances.
        Assert.Equal(d with { Endpoints = c.Options.Endpoints, RelayNetworks = c.Options.RelayNetworks }, c.Options);
        Assert.Null(c.TlsCertificate);
        Assert.Null(c.Options.AuthUsers);
    }

    [Fact]
    public void Values_are_read_under_the_section_path()
    {
        var (c, errors) = Read(new()
        {
            ["mtasts.listener.max-recipients"] = "50",
            ["mtasts.listener.data-timeout"] = "90s",
            ["mtasts.listener.bare-line-endings"] = "normalise",
            ["mtasts.listener.client-limits.messages-per-minute"] = "7",
            ["mtasts.listener.users.alice"] = "secret",
        }, new() { ["mtasts.listener.endpoints"] = ["127.0.0.1:0", "127.0.0.2"] });
        Assert.Empty(errors);
        Assert.Equal(50, c.Options.MaxRecipients);
        Assert.Equal(TimeSpan.FromSeconds(90), c.Options.DataTimeout);
        Assert.Equal(BareLineEndingPolicy.Normalize, c.Options.BareLineEndings);
        Assert.Equal(7, c.Options.ClientLimits.MessagesPerMinute);
        Assert.Equal("secret", c.Options.AuthUsers!["alice"]);
        Assert.Equal([new IPEndPoint(IPAddress.Loopback, 0), new IPEndPoint(IPAddress.Parse("127.0.0.2"), 25)], c.Options.Endpoints);
    }

    [Fact]
    public void Every_bad_value_is_reported_with_its_full_key()
    {
        var (c, errors) = Read(new()
        {
            ["mtasts.listener.max-recipients"] = "0",
            ["mtasts.listener.command-timeout"] = "5",
            ["mtasts.listener.max-message-size"] = "2000000",
            ["mtasts.listener.max-data-in-flight"] = "1048576",
            ["mtasts.listener.tls-certificate"] = "/etc/cert.pem",
            ["mtasts.listener.auth-failure-window"] = "0s",
        });
        Assert.StartsWith("mtasts.listener: auth-failure-window must be positive", errors[0]);
        Assert.Equal(
        [
            "mtasts.listener.max-recipients = \"0\": out of range 1..100000",
            "mtasts.listener.command-timeout = \"5\": not a duration (e.g. 30s, 5m, 1h)",
            "mtasts.listener.max-data-in-flight (1048576) must be at least max-message-size (2000000)",
            "mtasts.listener.tls-certificate and tls-key must be given together",
        ], errors.Skip(1));
        Assert.Equal(new SmtpListenerOptions().MaxRecipients, c.Options.MaxRecipients); // a bad value keeps the default
    }

    [Theory]
    [InlineData("500ms", 500)]
    [InlineData("1.5s", 1500)]
    [InlineData("2m", 120_000)]
    public void Durations_carry_a_unit(string text, int ms)
    {
        Assert.True(ConfigSection.TryParseDuration(text, out var t));
        Assert.Equal(TimeSpan.FromMilliseconds(ms), t);
        Assert.False(ConfigSection.TryParseDuration("60", out _)); // Akka reads a bare number as ms, people mean seconds
    }
}
