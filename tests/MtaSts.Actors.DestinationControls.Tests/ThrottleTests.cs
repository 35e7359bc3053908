using MtaSts.Actors.DestinationControls.Throttling;

namespace MtaSts.Actors.DestinationControls.Tests;

public sealed class ThrottleRuleTests
{
    private static ThrottleRule Rule(params (string Key, string Value)[] entries)
    {
        var errors = new List<string>();
        var rule = ThrottleRuleParser.Parse("r", entries.Select(e => new KeyValuePair<string, string?>(e.Key, e.Value)).ToArray(), errors.Add);
        Assert.True(rule is not null, string.Join("\n", errors));
        return rule!;
    }

    private static List<string> Errors(params (string Key, string? Value)[] entries)
    {
        var errors = new List<string>();
        Assert.Null(ThrottleRuleParser.Parse("mtasts.throttle.rules[3]",
            entries.Select(e => new KeyValuePair<string, string?>(e.Key, e.Value)).ToArray(), errors.Add));
        Assert.NotEmpty(errors);
        return errors;
    }

    private static readonly (string, string)[] Base = [("name", "x"), ("action", "limit-connections"), ("connections", "2"), ("duration", "5m")];

    [Theory]
    [InlineData("421", null, null, 421, "4.7.28", "rate limited", true)]
    [InlineData("421", null, null, 451, "4.7.28", "rate limited", false)]
    [InlineData("4xx", null, null, 450, null, "x", true)]
    [InlineData("4xx", null, null, 550, null, "x", false)]
    [InlineData(null, "4.7", null, 421, "4.7.28", "x", true)]
    [InlineData(null, "4.7.2", null, 421, "4.7.28", "x", false)] // a prefix by components, not by characters
    [InlineData(null, "4.7.28", null, 421, null, "x", false)]
    [InlineData(null, null, "TRY again LATER", 421, null, "4.3.2 Service busy, try again later", true)]
    [InlineData(null, null, "rate", 250, null, "rate", false)] // successes never match
    [InlineData("421", "4.7.0", "temporarily deferred", 421, "4.7.0", "[TSS04] Messages temporarily deferred", true)]
    [InlineData("421", "4.7.0", "temporarily deferred", 421, "4.7.0", "try again later", false)] // every part must match
    public void A_rule_matches_when_every_given_part_matches(string? code, string? enhanced, string? text, int replyCode,
        string? replyEnhanced, string replyText, bool expected)
    {
        var entries = Base.ToList();
        if (code is not null) entries.Add(("code", code));
        if (enhanced is not null) entries.Add(("enhanced", enhanced));
        if (text is not null) entries.Add(("text", text));
        Assert.Equal(expected, Rule([.. entries]).Matches(replyCode, replyEnhanced, replyText));
    }

    [Theory]
    [InlineData("action", "slow-down", "mtasts.throttle.rules[3].action = slow-down: unknown action")]
    [InlineData("text", "(unclosed", "mtasts.throttle.rules[3].text = \"(unclosed\": not a valid regular expression")]
    [InlineData("factor", "1.5", "mtasts.throttle.rules[3].factor = 1.5: outside (0, 1]")]
    [InlineData("factor", "0", "mtasts.throttle.rules[3].factor = 0: outside (0, 1]")]
    [InlineData("duration", "0s", "mtasts.throttle.rules[3].duration = 0s: out of range")]
    [InlineData("duration", "5", "mtasts.throttle.rules[3].duration = 5: not a duration")]
    [InlineData("ramp-step", "0ms", "mtasts.throttle.rules[3].ramp-step = 0ms: out of range")]
    [InlineData("code", "250", "mtasts.throttle.rules[3].code = 250: not a failure reply code")]
    [InlineData("enhanced", "2.0.0", "mtasts.throttle.rules[3].enhanced = 2.0.0: not an enhanced status code")]
    [InlineData("colour", "red", "mtasts.throttle.rules[3].colour: unknown setting")]
    public void A_bad_rule_is_refused_with_a_message_naming_the_key(string key, string value, string expected)
    {
        var entries = new List<(string, string?)> { ("name", "x"), ("code", "421"), ("action", "limit-connections"), ("factor", "0.5"), ("duration", "5m") };
        entries.RemoveAll(e => e.Item1 == key);
        entries.Add((key, value));
        Assert.Contains(Errors([.. entries]), e => e.StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Rules_need_a_name_a_match_an_action_and_one_limit()
    {
        Assert.Contains(Errors(("code", "421"), ("action", "suspend"), ("duration", "1m")), e => e.Contains(".name: missing"));
        Assert.Contains(Errors(("name", "x"), ("action", "suspend"), ("duration", "1m")), e => e.Contains("at least one of code, enhanced, text"));
        Assert.Contains(Errors(("name", "x"), ("code", "421"), ("action", "suspend")), e => e.Contains(".duration: missing"));
        Assert.Contains(Errors(("name", "x"), ("code", "421"), ("action", "limit-connections"), ("duration", "1m")),
            e => e.Contains("exactly one of connections or factor"));
        Assert.Contains(Errors(("name", "x"), ("code", "421"), ("action", "limit-rate"), ("rate", "10"), ("factor", "0.5"), ("duration", "1m")),
            e => e.Contains("exactly one of rate or factor"));
        Assert.Contains(Errors(("name", "x"), ("code", "421"), ("action", "suspend"), ("connections", "2"), ("duration", "1m")),
            e => e.Contains("only for action = limit-connections"));
        Assert.Contains(Errors(("name", "x"), ("code", "421"), ("action", "none"), ("duration", "1m")), e => e.Contains("not for action = none"));
        Assert.Contains(Errors(("name", "x"), ("code", null), ("action", "none")), e => e.Contains(".code: must be a single value"));
    }

    [Fact]
    public void Names_are_unique_within_a_list()
    {
        var errors = new List<string>();
        KeyValuePair<string, string?>[] Item(string name) =>
            [new("name", name), new("code", "421"), new("action", "suspend"), new("duration", "1m")];
        var rules = ThrottleRuleParser.ParseList("mtasts.throttle.rules", [Item("a"), Item("b"), Item("a"), null], errors.Add);
        Assert.Equal(["a", "b"], rules.Select(r => r.Name));
        Assert.Contains(errors, e => e.StartsWith("mtasts.throttle.rules[2].name = a: another rule"));
        Assert.Contains(errors, e => e.StartsWith("mtasts.throttle.rules[3] must be an object"));
    }

    [Fact]
    public void The_built_in_rules_are_valid_and_match_the_providers_replies()
    {
        var set = new ThrottleOptions().For(DestinationProfile.Default);
        string? Name(int code, string? enhanced, string text) => set.Match(code, enhanced, text)?.Name;
        Assert.Equal("gmail-rate-limited", Name(421, "4.7.28", "4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail"));
        Assert.Equal("gmail-receiving-rate", Name(450, "4.2.1", "4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages"));
        Assert.Equal("microsoft-rate-limited", Name(451, "4.7.650", "4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation."));
        Assert.Equal("temporarily-deferred", Name(421, "4.7.0", "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume"));
        Assert.Equal("yahoo-deferred", Name(421, null, "[TS01] Messages from 192.0.2.1 temporarily deferred"));
        Assert.Equal("too-many-connections", Name(421, "4.7.0", "4.7.0 Too many concurrent connections from your IP"));
        Assert.Equal("service-busy", Name(421, "4.3.2", "4.3.2 Service busy, try again later"));
        Assert.Null(Name(550, "5.7.1", "5.7.1 blocked, try again later"));
        Assert.Null(Name(451, "4.7.1", "4.7.1 Greylisted, please try again later"));
        Assert.Null(Name(452, "4.2.2", "4.2.2 The email account that you tried to reach is over quota"));
    }

    [Fact]
    public void Profile_rules_come_first_then_global_then_built_ins_and_a_name_replaces_a_built_in()
    {
        var mine = Rule(("name", "mine"), ("code", "421"), ("action", "suspend"), ("duration", "1m"));
        var quiet = Rule(("name", "service-busy"), ("code", "421"), ("text", "try again later"), ("action", "none"));
        var options = new ThrottleOptions { Rules = [quiet] };
        var set = options.For(DestinationProfile.Default with { ThrottleRules = [mine] });
        Assert.Equal("mine", set.Rules[0].Name);
        Assert.Equal("service-busy", set.Rules[1].Name);
        Assert.Equal(ThrottleAction.None, set.Rules[1].Action);
        Assert.Single(set.Rules, r => r.Name == "service-busy");
        Assert.Equal(BuiltinThrottleRules.All.Count + 1, set.Rules.Count);
        Assert.Empty(new ThrottleOptions { Builtin = false }.For(DestinationProfile.Default).Rules);
    }
}

public sealed class ThrottleStateTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static ThrottleRule Rule(string action, string? connections = null, string? factor = null, string? rate = null,
        string duration = "5m", string rampStep = "1m")
    {
        var entries = new List<KeyValuePair<string, string?>> { new("name", "r-" + action), new("code", "421"), new("action", action) };
        if (connections is not null) entries.Add(new("connections", connections));
        if (factor is not null) entries.Add(new("factor", factor));
        if (rate is not null) entries.Add(new("rate", rate));
        if (action != "none") { entries.Add(new("duration", duration)); entries.Add(new("ramp-step", rampStep)); }
        return ThrottleRuleParser.Parse("t", entries, e => throw new InvalidOperationException(e))!;
    }

    private static ThrottleTransition Fire(ThrottleState s, ThrottleRule rule, int inUse, DateTimeOffset now, int profileMax = 20)
    {
        var t = s.Decide(rule, "421 4.7.0 slow down", inUse, profileMax, now);
        Assert.NotNull(t);
        s.Apply(t);
        return t;
    }

    private static List<ThrottleTransition> Tick(ThrottleState s, DateTimeOffset now)
    {
        var changes = s.Decide(now).ToList();
        foreach (var c in changes) s.Apply(c);
        return changes;
    }

    [Theory]
    [InlineData("limit-connections", "2", null, 10, 2)]
    [InlineData("limit-connections", null, "0.5", 10, 5)]
    [InlineData("limit-connections", null, "0.1", 4, 1)]   // never below one connection
    [InlineData("limit-connections", "8", null, 3, 3)]      // a value never raises the level in use
    [InlineData("suspend", null, null, 10, 0)]
    public void A_rule_firing_lowers_the_connection_limit(string action, string? connections, string? factor, int inUse, int expected)
    {
        var s = new ThrottleState();
        var t = Fire(s, Rule(action, connections, factor), inUse, T0);
        Assert.Equal(ThrottleChangeKind.Fired, t.Kind);
        Assert.Equal(expected, s.ConnectionLimit);
        Assert.Equal(T0 + TimeSpan.FromMinutes(5), s.Level!.HoldUntil);
    }

    [Fact]
    public void The_log_line_names_the_rule_the_reply_and_the_limits()
    {
        var s = new ThrottleState();
        var t = Fire(s, Rule("limit-connections", connections: "2"), 10, T0);
        Assert.Equal("Destination gmail.com throttled by rule r-limit-connections: 421 4.7.0 slow down; connections 10 -> 2 for 5m", t.Text("gmail.com"));
        Assert.Equal("destination_throttled", t.Event);
        Assert.EndsWith("suspended for 5m", Fire(new ThrottleState(), Rule("suspend"), 3, T0).Text("x"));
    }

    [Fact]
    public void Action_none_changes_nothing() =>
        Assert.Null(new ThrottleState().Decide(Rule("none"), "421 x", 5, 10, T0));

    [Fact]
    public void A_second_firing_extends_the_hold_and_tightens_only_once_the_connections_are_down_to_the_limit()
    {
        var s = new ThrottleState();
        var half = Rule("limit-connections", factor: "0.5");
        Fire(s, half, 10, T0);
        Assert.Equal(5, s.ConnectionLimit);
        // Replies of the 10 connections open before the cut: the hold is extended, the limit stays.
        Fire(s, half, 9, T0 + TimeSpan.FromSeconds(1));
        Assert.Equal(5, s.ConnectionLimit);
        Assert.Equal(T0 + TimeSpan.FromSeconds(301), s.Level!.HoldUntil);
        // A complaint at the lowered level: tightened again, the level to come back to is unchanged.
        Fire(s, half, 5, T0 + TimeSpan.FromMinutes(2));
        Assert.Equal(2, s.ConnectionLimit);
        Assert.Equal(10, s.Level!.ConnectionsBefore);
        Assert.Equal(T0 + TimeSpan.FromMinutes(7), s.Level!.HoldUntil);
        // A fixed value tightens at once; a suspension is not loosened by a limit.
        Fire(s, Rule("limit-connections", connections: "1"), 2, T0 + TimeSpan.FromMinutes(3));
        Assert.Equal(1, s.ConnectionLimit);
        Fire(s, Rule("suspend", duration: "1m"), 1, T0 + TimeSpan.FromMinutes(4));
        Fire(s, half, 0, T0 + TimeSpan.FromMinutes(4));
        Assert.Equal(0, s.ConnectionLimit);
    }

    [Fact]
    public void After_the_hold_the_limit_ramps_one_connection_per_step_back_to_the_level_before_and_the_throttle_ends()
    {
        var s = new ThrottleState();
        Fire(s, Rule("limit-connections", connections: "2", duration: "5m", rampStep: "1m"), 5, T0);
        Assert.Empty(Tick(s, T0 + TimeSpan.FromMinutes(4)));
        var expired = Assert.Single(Tick(s, T0 + TimeSpan.FromMinutes(5)));
        Assert.Equal(ThrottleChangeKind.Expired, expired.Kind);
        Assert.Equal(3, s.ConnectionLimit);
        Assert.Contains("expired: ramping back, connections 3 (of 5), every 1m", expired.Text("d"));
        Assert.Empty(Tick(s, T0 + TimeSpan.FromSeconds(359)));
        Assert.Equal(ThrottleChangeKind.Ramped, Assert.Single(Tick(s, T0 + TimeSpan.FromMinutes(6))).Kind);
        Assert.Equal(4, s.ConnectionLimit);
        var ended = Assert.Single(Tick(s, T0 + TimeSpan.FromMinutes(7)));
        Assert.Equal(ThrottleChangeKind.Ended, ended.Kind);
        Assert.Null(s.Level);
        Assert.Null(s.ConnectionLimit);
        Assert.Equal("Destination d throttle by rule r-limit-connections ended: back to the profile limits", ended.Text("d"));
    }

    [Fact]
    public void A_suspension_resumes_with_one_connection_and_a_late_wake_catches_up_every_step()
    {
        var s = new ThrottleState();
        Fire(s, Rule("suspend", duration: "1m", rampStep: "10s"), 4, T0);
        Assert.True(s.Level!.Suspended);
        var changes = Tick(s, T0 + TimeSpan.FromSeconds(85));
        Assert.Equal([ThrottleChangeKind.Expired, ThrottleChangeKind.Ramped, ThrottleChangeKind.Ramped], changes.Select(c => c.Kind));
        Assert.Equal(3, s.ConnectionLimit); // 1 at 60 s, 2 at 70 s, 3 at 80 s
        Assert.Equal(ThrottleChangeKind.Ended, Assert.Single(Tick(s, T0 + TimeSpan.FromSeconds(90))).Kind);
    }

    [Fact]
    public void The_ramp_never_goes_above_the_profile()
    {
        var s = new ThrottleState();
        Fire(s, Rule("limit-connections", factor: "0.5"), 30, T0, profileMax: 6);
        Assert.Equal(3, s.ConnectionLimit);
        Assert.Equal(6, s.Level!.ConnectionsBefore);
    }

    [Fact]
    public void A_rate_limit_paces_transactions_and_doubles_back_to_the_rate_before()
    {
        var s = new ThrottleState();
        for (var i = 0; i < 20; i++) s.NoteSent(T0 - TimeSpan.FromSeconds(30) + TimeSpan.FromSeconds(i));
        Assert.Equal(20, s.SentLastMinute(T0));
        Fire(s, Rule("limit-rate", factor: "0.5", duration: "2m", rampStep: "1m"), 2, T0);
        Assert.Equal(10, s.Level!.Rate);
        Assert.Null(s.ConnectionLimit);
        Assert.Null(s.RateWait(T0));
        s.NoteSent(T0);
        Assert.Equal(TimeSpan.FromSeconds(6), s.RateWait(T0)); // 10 per minute: one every 6 s
        Assert.Null(s.RateWait(T0 + TimeSpan.FromSeconds(6)));
        // A second complaint within the minute does not halve again (the rate counted still includes the old pace).
        Fire(s, Rule("limit-rate", factor: "0.5"), 2, T0 + TimeSpan.FromSeconds(10));
        Assert.Equal(10, s.Level!.Rate);
        Assert.Equal(ThrottleChangeKind.Ended, Assert.Single(Tick(s, T0 + TimeSpan.FromMinutes(5).Add(TimeSpan.FromSeconds(10)))).Kind);
        Assert.Null(s.RateWait(T0 + TimeSpan.FromMinutes(6)));
    }

    [Fact]
    public void A_fixed_rate_applies_even_when_nothing_was_sent_and_the_counts_of_older_minutes_are_forgotten()
    {
        var s = new ThrottleState();
        s.NoteSent(T0 - TimeSpan.FromMinutes(5));
        Assert.Equal(0, s.SentLastMinute(T0));
        Fire(s, Rule("limit-rate", rate: "30"), 1, T0);
        Assert.Equal(30, s.Level!.Rate);
    }
}

public sealed class ThrottleProfileConfigTests
{
    [Fact]
    public void A_profile_reads_its_throttle_rules_inherits_them_from_default_and_an_empty_list_means_none_of_its_own()
    {
        var r = DestinationConfigLoader.Parse("""
            mtasts.destinations {
              default { throttle-rules = [{ name = slow, code = 421, text = "slow down", action = limit-connections, factor = 0.5, duration = 5m }] }
              "gmail.com" { throttle-rules = [
                  { name = gmail-hard, code = 421, enhanced = "4.7.28", action = suspend, duration = 2m, ramp-step = 10s }
                  { name = pace, code = "4xx", action = limit-rate, rate = 30, duration = 1m }
                ] }
              "plain.test" { throttle-rules = [] }
              "other.test" { max-concurrent-connections = 5 }
            }
            """);
        Assert.True(r.IsValid, string.Join("\n", r.Errors));
        var profiles = r.Config!.Profiles;
        var gmail = profiles.Resolve("gmail.com").ThrottleRules;
        Assert.Equal(["gmail-hard", "pace"], gmail.Select(x => x.Name));
        Assert.Equal(ThrottleAction.Suspend, gmail[0].Action);
        Assert.Equal(TimeSpan.FromSeconds(10), gmail[0].RampStep);
        Assert.Equal(30, gmail[1].Rate);
        Assert.Empty(profiles.Resolve("plain.test").ThrottleRules);
        Assert.Equal("slow", Assert.Single(profiles.Resolve("other.test").ThrottleRules).Name);
    }

    [Fact]
    public void A_bad_profile_rule_is_refused_naming_the_destination_and_the_key()
    {
        var r = DestinationConfigLoader.Parse(
            "mtasts.destinations { \"gmail.com\" { throttle-rules = [{ name = x, code = 421, action = limit-connections, factor = 2, duration = 5m }] } }");
        Assert.False(r.IsValid);
        Assert.Contains("destination \"gmail.com\": throttle-rules[0].factor = 2: outside (0, 1]: the limit becomes this fraction of the current level", r.Errors);
        Assert.Contains(DestinationConfigLoader.Parse("mtasts.destinations { \"a.test\" { throttle-rules = on } }").Errors,
            e => e.StartsWith("destination \"a.test\": throttle-rules must be a list of rules"));
    }

    [Fact]
    public void Export_writes_the_rules_so_that_an_import_gives_the_same_profiles()
    {
        var r = DestinationConfigLoader.Parse("""
            mtasts.destinations {
              "gmail.com" { throttle-rules = [
                  { name = a, code = "4xx", enhanced = "4.7", text = "rate (limit|exceeded)\\b", action = limit-connections, connections = 3, duration = 90s, ramp-step = 500ms }
                  { name = b, code = 421, action = limit-rate, factor = 0.25, duration = 1h }
                  { name = c, text = "x", action = none }
                ] }
            }
            """);
        Assert.True(r.IsValid, string.Join("\n", r.Errors));
        var text = DestinationConfigWriter.Write(r.Config!);
        var back = DestinationConfigLoader.Parse(text);
        Assert.True(back.IsValid, string.Join("\n", back.Errors) + "\n" + text);
        Assert.Equal(r.Config!.Profiles.Resolve("gmail.com"), back.Config!.Profiles.Resolve("gmail.com"));
        Assert.Equal(3, back.Config.Profiles.Resolve("gmail.com").ThrottleRules.Count);
    }
}
