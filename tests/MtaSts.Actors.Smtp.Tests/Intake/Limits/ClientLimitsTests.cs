using MtaSts.Actors.Smtp.Intake.Limits;

namespace MtaSts.Actors.Smtp.Tests.Intake.Limits;

public sealed class ClientLimitsTests
{
    [Fact]
    public void Defaults_for_ordinary_clients()
    {
        var d = ClientLimits.Default;
        Assert.Equal(20, d.MaxSessions);
        Assert.Equal(120, d.ConnectionsPerMinute);
        Assert.Equal(600, d.MessagesPerMinute);
        Assert.Equal(TimeSpan.FromMinutes(10), d.MaxSessionDuration);
        Assert.Equal(100, d.MaxNonTransactionCommands);
        Assert.Equal(3, d.SoftErrorLimit);
        Assert.Equal(TimeSpan.FromSeconds(1), d.ErrorDelay);
        d.Validate();
    }

    [Fact]
    public void Defaults_for_relay_networks()
    {
        var r = ClientLimits.RelayDefault;
        Assert.Equal(1000, r.MaxSessions);
        Assert.Equal(0, r.ConnectionsPerMinute);
        Assert.Equal(0, r.MessagesPerMinute);
        Assert.Equal(TimeSpan.FromHours(1), r.MaxSessionDuration);
        Assert.Equal(1000, r.MaxNonTransactionCommands);
        Assert.Equal(10, r.SoftErrorLimit);
        Assert.Equal(TimeSpan.FromSeconds(1), r.ErrorDelay);
        r.Validate();
    }

    [Theory]
    [InlineData("max-sessions-per-client")]
    [InlineData("connections-per-minute")]
    [InlineData("messages-per-minute")]
    [InlineData("max-session-duration")]
    [InlineData("max-non-transaction-commands")]
    [InlineData("soft-error-limit")]
    [InlineData("error-delay")]
    public void Validate_names_the_setting(string setting)
    {
        var bad = setting switch
        {
            "max-sessions-per-client" => ClientLimits.Default with { MaxSessions = -1 },
            "connections-per-minute" => ClientLimits.Default with { ConnectionsPerMinute = -1 },
            "messages-per-minute" => ClientLimits.Default with { MessagesPerMinute = -1 },
            "max-session-duration" => ClientLimits.Default with { MaxSessionDuration = TimeSpan.Zero },
            "max-non-transaction-commands" => ClientLimits.Default with { MaxNonTransactionCommands = -1 },
            "soft-error-limit" => ClientLimits.Default with { SoftErrorLimit = -1 },
            _ => ClientLimits.Default with { ErrorDelay = TimeSpan.FromMinutes(6) },
        };
        var ex = Assert.Throws<ArgumentException>(bad.Validate);
        Assert.StartsWith(setting + " must be", ex.Message);
    }

    [Fact]
    public void Zero_means_unlimited_and_is_valid()
    {
        new ClientLimits { MaxSessions = 0, ConnectionsPerMinute = 0, MessagesPerMinute = 0, MaxNonTransactionCommands = 0, SoftErrorLimit = 0, ErrorDelay = TimeSpan.Zero }.Validate();
    }

    [Fact]
    public void Error_replies_are_delayed_only_past_the_soft_limit()
    {
        var l = ClientLimits.Default; // soft limit 3, delay 1 s
        Assert.Equal(TimeSpan.Zero, l.ErrorReplyDelay(1));
        Assert.Equal(TimeSpan.Zero, l.ErrorReplyDelay(3));
        Assert.Equal(TimeSpan.FromSeconds(1), l.ErrorReplyDelay(4));
        Assert.Equal(TimeSpan.FromSeconds(1), l.ErrorReplyDelay(50));
        Assert.Equal(TimeSpan.Zero, (l with { SoftErrorLimit = 0 }).ErrorReplyDelay(50));
    }
}
