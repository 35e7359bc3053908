using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Engine.Tests.Hosting;

public sealed class GatewayConfigTests
{
    [Fact]
    public void Shipped_defaults_load_and_describe_the_embedded_gateway()
    {
        var c = GatewayConfig.Load(GatewayConfig.DefaultFiles());
        Assert.Equal("data", c.DataDir);
        Assert.Equal(2525, Assert.Single(c.Listener.Options.Endpoints).Port);
        Assert.Empty(c.Delivery.MxOverride);
        Assert.Equal(TimeSpan.FromSeconds(60), c.Policy.Fetcher.Timeout);
        Assert.Equal(443, c.Policy.Fetcher.Port);
        Assert.Equal(500, c.Destinations.Profiles.Default.MaxConcurrentConnections);
        // Intake hardening defaults (README "Security").
        Assert.Equal(MtaSts.Actors.Smtp.Intake.BareLineEndingPolicy.Reject, c.Listener.Options.BareLineEndings);
        Assert.Equal(MtaSts.Actors.Smtp.Intake.Limits.ClientLimits.Default, c.Listener.Options.ClientLimits);
        Assert.Equal(MtaSts.Actors.Smtp.Intake.Limits.ClientLimits.RelayDefault, c.Listener.Options.RelayClientLimits);
        Assert.Equal(new MtaSts.Actors.Smtp.Intake.Limits.AuthThrottleOptions(), c.Listener.Options.AuthThrottle);
        Assert.Equal(256 * 1024, c.Listener.Options.BodyMemoryLimit);
    }

    [Fact]
    public void Later_text_overrides_the_shipped_files()
    {
        var c = GatewayConfig.Load(GatewayConfig.DefaultFiles(), """
            mtasts {
              data-dir = "/tmp/x"
              listener.endpoints = ["127.0.0.1:0"]
              delivery {
                mx-override { "*" = "127.0.0.1:2600" }
                connection-idle-time = 200ms
              }
            }
            mtasts.destinations.default { max-concurrent-connections = 7 }
            mtasts.policy.lenient-content-type-domains = ["Mislabelled.Example."]
            mtasts.policy.https-port = 8443
            """);
        Assert.Equal(8443, c.Policy.Fetcher.Port);
        Assert.Contains("mislabelled.example", c.Policy.LenientContentTypeDomains);
        Assert.False(c.Policy.LenientContentType);
        Assert.Equal("/tmp/x", c.DataDir);
        Assert.Equal(0, Assert.Single(c.Listener.Options.Endpoints).Port);
        Assert.Equal(2600, Assert.Single(c.Delivery.MxOverride["*"]).Port);
        Assert.Equal(TimeSpan.FromMilliseconds(200), c.Delivery.ConnectionIdleTime);
        Assert.Equal(7, c.Destinations.Profiles.Default.MaxConcurrentConnections);
    }

    [Theory]
    [InlineData("mtasts.listener.max-sessions = 0", "mtasts.listener.max-sessions")]
    [InlineData("mtasts.delivery.connect-timeout = soon", "mtasts.delivery.connect-timeout")]
    [InlineData("mtasts.listener.endpoints = [\"nowhere\"]", "mtasts.listener.endpoints")]
    [InlineData("mtasts.destinations.default.max-concurrent-connections = 5000", "max-concurrent-connections")]
    [InlineData("mtasts.delivery.mx-override { \"*\" = \"[::1\" }", "mx-override")]
    [InlineData("mtasts.policy.https-port = 0", "mtasts.policy.https-port")]
    [InlineData("mtasts.listener.bare-line-endings = allow", "mtasts.listener.bare-line-endings")]
    [InlineData("mtasts.listener.body-memory-limit = 10", "mtasts.listener.body-memory-limit")]
    [InlineData("mtasts.listener.max-data-in-flight = 1048576", "max-data-in-flight")]
    [InlineData("mtasts.listener.client-limits.max-sessions-per-client = -1", "mtasts.listener.client-limits.max-sessions-per-client")]
    [InlineData("mtasts.listener.relay-client-limits.error-delay = 1h", "mtasts.listener.relay-client-limits: error-delay")]
    [InlineData("mtasts.listener.auth-max-delay = 1ms", "auth-max-delay")]
    // Moved to the destination profiles; a leftover global value must not be silently ignored.
    [InlineData("mtasts.delivery.max-recipients-per-transaction = 50", "mtasts.delivery.max-recipients-per-transaction is no longer a gateway setting")]
    [InlineData("mtasts.delivery.mx-rollup = sometimes", "mtasts.delivery.mx-rollup = \"sometimes\": expected true or false")]
    // Bounce verification needs keys and our sender domains.
    [InlineData("mtasts.destinations.default.bounce-verification = on", "destination \"default\": bounce-verification = on needs mtasts.bounce-verification.keys")]
    [InlineData("mtasts.bounce-verification { keys = [{ id = 1, secret = \"0123456789abcdef\" }] }", "mtasts.bounce-verification.domains is empty")]
    [InlineData("mtasts.bounce-verification { domains = [\"example.org\"] }", "mtasts.bounce-verification.domains is set but no key is configured")]
    [InlineData("mtasts.bounce-verification { keys = [{ id = 10, secret = \"0123456789abcdef\" }], domains = [\"example.org\"] }", "id = 10 is not a key number 0..9")]
    [InlineData("mtasts.bounce-verification { keys = [{ id = 1, secret = \"short\" }], domains = [\"example.org\"] }", "key 1: the secret needs at least 16 characters")]
    [InlineData("mtasts.bounce-verification { keys = [{ id = 1, secret = \"0123456789abcdef\" }, { id = 1, secret = \"0123456789abcdefg\" }], domains = [\"example.org\"] }", "key id 1 appears twice")]
    [InlineData("mtasts.bounce-verification { keys = [{ id = 1, secret = \"0123456789abcdef\" }], domains = [\"example.org\"], validity = 36h }", "mtasts.bounce-verification.validity = \"36h\": whole days from 1d to 30d")]
    [InlineData("mtasts.bounce-verification { keys = [{ id = 1, secret = \"0123456789abcdef\" }], domains = [\"exa mple.org\"] }", "\"exa mple.org\" is not a domain")]
    [InlineData("mtasts.destinations.\"a.test\".limit-scope = per-virtual-gateway", "limit-scope = per-virtual-gateway is not supported")]
    public void Invalid_values_are_rejected_with_their_path(string hocon, string expected)
    {
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(GatewayConfig.DefaultFiles(), hocon));
        Assert.Contains(e.Errors, x => x.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void MX_roll_up_is_on_by_default_and_can_be_turned_off()
    {
        Assert.True(GatewayConfig.Load(GatewayConfig.DefaultFiles()).Delivery.MxRollup);
        Assert.False(GatewayConfig.Load(GatewayConfig.DefaultFiles(), "mtasts.delivery.mx-rollup = off").Delivery.MxRollup);
    }

    [Fact]
    public void The_shipped_configuration_applies_MTA_STS_to_every_destination()
    {
        var c = GatewayConfig.Load(GatewayConfig.DefaultFiles());
        Assert.True(c.Destinations.Profiles.Default.MtaSts);
        Assert.True(c.Destinations.Resolve("any.example").Profile.EnforcesMtaSts);
        Assert.False(GatewayConfig.Load(GatewayConfig.DefaultFiles(), "mtasts.destinations.default.mta-sts = off")
            .Destinations.Resolve("any.example").Profile.MtaSts);
    }

    [Fact]
    public void Bounce_verification_with_keys_and_domains_is_accepted_and_the_last_key_signs()
    {
        var c = GatewayConfig.Load(GatewayConfig.DefaultFiles(), """
            mtasts.bounce-verification {
              keys = [{ id = 1, secret = "0123456789abcdef-old" }, { id = 2, secret = "0123456789abcdef-new" }]
              validity = 10d
              domains = ["example.org", ".corp.example"]
            }
            mtasts.destinations.default.bounce-verification = on
            """);
        var tagger = Assert.IsType<MtaSts.Actors.Smtp.Batv.BounceAddressTagger>(c.BounceVerification);
        Assert.Equal(2, tagger.Current.Id);
        Assert.Equal(10, tagger.ValidityDays);
        Assert.True(tagger.IsOurDomain("a.corp.example"));
        Assert.True(c.Destinations.Profiles.Default.BounceVerification);
    }

    [Fact]
    public void Throttle_rules_are_read_from_mtasts_throttle_and_the_built_ins_are_on_by_default()
    {
        var d = GatewayConfig.Load(GatewayConfig.DefaultFiles());
        Assert.True(d.Throttle.Builtin);
        Assert.Empty(d.Throttle.Rules);
        Assert.Equal("gmail-rate-limited", d.Throttle.For(d.Destinations.Profiles.Default).Match(421, "4.7.28", "4.7.28 rate limited")?.Name);

        var c = GatewayConfig.Load(GatewayConfig.DefaultFiles(), """
            mtasts.throttle {
              builtin = off
              rules = [
                { name = a, code = 421, action = limit-connections, connections = 2, duration = 5m }
                { name = b, enhanced = "4.7", text = "(?i)rate", action = limit-rate, rate = 60, duration = 1m, ramp-step = 10s }
              ]
            }
            mtasts.destinations { "gmail.com" { throttle-rules = [{ name = g, code = "4xx", action = suspend, duration = 30s }] } }
            """);
        Assert.False(c.Throttle.Builtin);
        Assert.Equal(["a", "b"], c.Throttle.Rules.Select(r => r.Name));
        var gmail = c.Throttle.For(c.Destinations.Profiles.Resolve("gmail.com"));
        Assert.Equal(["g", "a", "b"], gmail.Rules.Select(r => r.Name));
        Assert.Equal(["a", "b"], c.Throttle.For(c.Destinations.Profiles.Default).Rules.Select(r => r.Name));
    }

    [Theory]
    [InlineData("mtasts.throttle.rules = [{ name = a, code = 421, action = slow, duration = 5m }]", "mtasts.throttle.rules[0].action = slow: unknown action")]
    [InlineData("mtasts.throttle.rules = [{ name = a, text = \"(\", action = suspend, duration = 5m }]", "mtasts.throttle.rules[0].text = \"(\": not a valid regular expression")]
    [InlineData("mtasts.throttle.rules = [{ name = a, code = 421, action = limit-rate, factor = 0, duration = 5m }]", "mtasts.throttle.rules[0].factor = 0: outside (0, 1]")]
    [InlineData("mtasts.throttle.rules = [{ name = a, code = 421, action = suspend, duration = 0s }]", "mtasts.throttle.rules[0].duration = 0s: out of range")]
    [InlineData("mtasts.throttle.rules = on", "mtasts.throttle.rules must be a list of objects")]
    [InlineData("mtasts.throttle.builtin = maybe", "mtasts.throttle.builtin = \"maybe\": expected on or off")]
    [InlineData("mtasts.throttle.rule = []", "mtasts.throttle.rule: unknown setting (known: builtin, rules)")]
    public void A_bad_throttle_setting_is_refused_at_load_naming_the_key(string hocon, string expected)
    {
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(GatewayConfig.DefaultFiles(), hocon));
        Assert.Contains(e.Errors, x => x.StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void A_syntax_error_is_reported_not_thrown_raw()
    {
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(GatewayConfig.DefaultFiles(), "mtasts.delivery { mx-override { }, connect-timeout = 5s }"));
        Assert.Contains("HOCON", e.Message);
    }

    [Fact]
    public void Substitutions_are_refused_because_akka_hocon_drops_the_rest_of_the_file()
    {
        var e = Assert.Throws<GatewayConfigException>(() => GatewayConfig.Load(GatewayConfig.DefaultFiles(), "mtasts.hostname = ${?HOST}"));
        Assert.Contains("MTASTS_", e.Message);
    }

    [Fact]
    public void Environment_overrides_map_to_fixed_paths()
    {
        var env = new Dictionary<string, string>
        {
            ["MTASTS_DATA_DIR"] = "/var/lib/mtasts",
            ["MTASTS_PG"] = "Host=db;Password=\"x\"",
            ["MTASTS_SEED_NODES"] = "akka.tcp://mtasts@a:4053, akka.tcp://mtasts@b:4053",
        };
        var text = GatewayConfig.EnvironmentOverrides(k => env.GetValueOrDefault(k));
        var c = Akka.Configuration.ConfigurationFactory.ParseString(text);
        Assert.Equal("/var/lib/mtasts", c.GetString("mtasts.data-dir"));
        Assert.Equal("Host=db;Password=\"x\"", c.GetString("akka.persistence.snapshot-store.sharding.connection-string"));
        Assert.Equal(["akka.tcp://mtasts@a:4053", "akka.tcp://mtasts@b:4053"], c.GetStringList("akka.cluster.seed-nodes"));
        Assert.Equal("", GatewayConfig.EnvironmentOverrides(_ => null));
    }

    [Fact]
    public void The_postgres_cluster_file_layers_over_the_defaults()
    {
        var files = GatewayConfig.DefaultFiles().Append(Path.Combine(AppContext.BaseDirectory, "hocon", "cluster-postgres.conf"));
        // A node bound to 0.0.0.0 must say under which name the others reach it (MTASTS_PUBLIC_HOSTNAME).
        var c = GatewayConfig.Load(files, "akka.remote.dot-netty.tcp.public-hostname = \"node1.internal\"\nmtasts.hostname = \"node1.internal\"");
        Assert.StartsWith("PostgreSQL", c.Hocon.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal(2, c.Hocon.GetStringList("akka.cluster.seed-nodes").Count);
        Assert.Equal("data", c.DataDir);
    }
}
