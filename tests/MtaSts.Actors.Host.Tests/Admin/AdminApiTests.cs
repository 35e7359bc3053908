using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MtaSts.Actors.Admin;
using MtaSts.Actors.Engine.Hosting;
using MtaSts.Actors.Host.Tests.Serve;
using MtaSts.Actors.TestInfra.Net;
using MtaSts.Actors.TestInfra.Smtp;

namespace MtaSts.Actors.Host.Tests.Admin;

/// <summary>A real <c>serve</c> process with its admin endpoint (token set); mail for a destination whose MX refuses
/// connections stays queued, so the API has something to show.</summary>
public sealed class AdminGateway : IAsyncLifetime
{
    public static readonly TimeSpan Generous = TimeSpan.FromMinutes(2);
    public const string Token = "test-admin-token-0123456789";
    public string Work { get; } = Path.Combine(Path.GetTempPath(), "mtasts-admin-" + Guid.NewGuid().ToString("N"));
    public int SmtpPort { get; } = LoopbackPort.Free();
    public int AdminPort { get; } = LoopbackPort.Free();
    public int DeadMxPort { get; } = LoopbackPort.Free();
    public GatewayProcess Process { get; private set; } = null!;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Work);
        var conf = Path.Combine(Work, "gw.conf");
        File.WriteAllText(conf, $$"""
            mtasts {
              data-dir = "{{Work}}/data"
              listener.endpoints = ["127.0.0.1:{{SmtpPort}}"]
              admin { endpoints = ["127.0.0.1:{{AdminPort}}"], token = "{{Token}}" }
              delivery.mx-override { "*" = "127.0.0.1:{{DeadMxPort}}" }
              delivery.connect-timeout = 2s
              log.text = "{{Work}}/mail.log"
            }
            mtasts.destinations.default.tls-support = none
            mtasts.destinations.default.mta-sts = off   # no DNS for the test domains
            mtasts.bounce-profiles.default { initial-retry-interval = 1h, max-retry-interval = 1h }
            """);
        Process = GatewayProcess.Start(conf);
        Http.BaseAddress = new Uri($"http://127.0.0.1:{AdminPort}/");
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        await Process.WaitForAdminAsync(SmtpPort, Http, Generous);
    }

    /// <summary>Submits one message over raw SMTP and returns its MID.</summary>
    public Task<long> SubmitAsync(string to) =>
        SmtpSubmission.SubmitAsync(SmtpPort, "admin.test", "app@sender.test", to, "Subject: admin\r\n\r\nqueued");

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        var res = await Http.GetAsync(path);
        Assert.True(res.IsSuccessStatusCode, $"{path}: {(int)res.StatusCode} {await res.Content.ReadAsStringAsync()}");
        return JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement;
    }

    /// <summary>GET api/cluster once this node's cluster read view shows it Up: right after the start, on a loaded
    /// machine, Akka's read view (Cluster.SelfMember) can still show its initial status for a while.</summary>
    public async Task<JsonElement> ClusterViewUpAsync()
    {
        var deadline = DateTime.UtcNow + Generous;
        while (true)
        {
            var c = await GetJsonAsync("api/cluster");
            if (c.GetProperty("self_status").GetString() == "up" || DateTime.UtcNow > deadline) return c;
            await Task.Delay(200);
        }
    }

    public string LogText() => GatewayProcess.ReadShared(Path.Combine(Work, "mail.log"));

    public async Task DisposeAsync()
    {
        Http.Dispose();
        if (Process is not null) await Process.DisposeAsync();
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>One <see cref="AdminGateway"/> for the API tests and the CLI tests (one serve process fewer on a loaded machine).</summary>
[CollectionDefinition(Name)]
public sealed class AdminGatewayCollection : ICollectionFixture<AdminGateway>
{
    public const string Name = "admin gateway";
}

[Collection(AdminGatewayCollection.Name)]
public sealed partial class AdminApiTests(AdminGateway gw)
{
    [Fact]
    public async Task Without_the_token_the_api_answers_401_but_health_probes_stay_open()
    {
        using var anonymous = new HttpClient { BaseAddress = gw.Http.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("api/queue")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("metrics")).StatusCode);
        using var wrong = new HttpRequestMessage(HttpMethod.Get, "api/queue");
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "not-the-token-at-all");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(wrong)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("health/live")).StatusCode);
        var ready = await anonymous.GetAsync("health/ready");
        var body = await ready.Content.ReadAsStringAsync();
        Assert.True(ready.StatusCode == HttpStatusCode.OK, body);
        var checks = JsonDocument.Parse(body).RootElement.GetProperty("checks");
        foreach (var name in new[] { "spool", "listener", "cluster", "journal" })
            Assert.Equal("healthy", checks.GetProperty(name).GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_single_node_answers_the_cluster_view_with_not_clustered()
    {
        var c = await gw.ClusterViewUpAsync();
        Assert.False(c.GetProperty("clustered").GetBoolean());
        Assert.Equal("single-node", c.GetProperty("formation").GetString());
        Assert.Equal("up", c.GetProperty("self_status").GetString());
        Assert.Equal("open", c.GetProperty("intake").GetString());
        Assert.Equal(JsonValueKind.Null, c.GetProperty("intake_refusal").ValueKind);
        Assert.StartsWith("akka.tcp://", c.GetProperty("self_address").GetString());
        Assert.False(c.TryGetProperty("members", out _));
        using var anonymous = new HttpClient { BaseAddress = gw.Http.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("api/cluster")).StatusCode);
    }

    [Fact]
    public async Task Queued_mail_shows_in_the_queue_the_destination_and_the_message_views()
    {
        var mid = await gw.SubmitAsync("someone@held.test");
        JsonElement row = default;
        var deadline = DateTime.UtcNow + AdminGateway.Generous;
        while (DateTime.UtcNow < deadline)
        {
            var queue = await gw.GetJsonAsync("api/queue");
            var rows = queue.GetProperty("destinations").EnumerateArray().Where(d => d.GetProperty("domain").GetString() == "held.test").ToArray();
            // The first attempt fails (connection refused) and the recipient is deferred with its error.
            if (rows.Length == 1 && rows[0].GetProperty("last_error").ValueKind == JsonValueKind.String) { row = rows[0]; break; }
            await Task.Delay(200);
        }
        Assert.Equal(JsonValueKind.Object, row.ValueKind);
        Assert.True(row.GetProperty("recipients").GetInt32() >= 1);
        Assert.True(row.GetProperty("deferred").GetInt32() >= 1);
        Assert.Equal(500, row.GetProperty("max_connections").GetInt32());
        Assert.Contains("4.4.", row.GetProperty("last_error").GetString());

        var detail = await gw.GetJsonAsync("api/queue/held.test");
        Assert.Contains(detail.GetProperty("messages").EnumerateArray(), m => m.GetProperty("mid").GetInt64() == mid);

        var message = await gw.GetJsonAsync($"api/messages/{mid}");
        Assert.Equal("app@sender.test", message.GetProperty("from").GetString());
        Assert.Equal("someone@held.test", message.GetProperty("recipients")[0].GetProperty("address").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await gw.Http.GetAsync("api/messages/999999999")).StatusCode);

        var profile = await gw.GetJsonAsync("api/profiles/held.test");
        Assert.Equal(500, profile.GetProperty("max_concurrent_connections").GetInt32());
        Assert.Equal("none", profile.GetProperty("tls_support").GetString());
        Assert.Equal("none", row.GetProperty("tls").GetString());
        Assert.False(profile.GetProperty("bounce_verification").GetBoolean());
        Assert.False(row.GetProperty("bounce_verification").GetBoolean());
    }

    [Fact]
    public async Task Deliver_now_and_policy_purge_are_logged_with_who_did_it()
    {
        var res = await gw.Http.PostAsync("api/deliver-now?domain=held.test", null);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await gw.Http.DeleteAsync("api/policies/nothing-cached.test")).StatusCode);
        var deadline = DateTime.UtcNow + AdminGateway.Generous;
        while (!(gw.LogText().Contains("Operator action: deliver now destination held.test by admin token from 127.0.0.1") &&
                 gw.LogText().Contains("Operator action: purge MTA-STS policy for the domain (nothing-cached.test) by admin token from 127.0.0.1: none cached")))
        {
            Assert.True(DateTime.UtcNow < deadline, gw.LogText());
            await Task.Delay(100);
        }
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>[-+0-9.eE]+|NaN|\+Inf|-Inf)( [0-9]+)?$")]
    private static partial Regex Sample();

    [GeneratedRegex(@"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$")]
    private static partial Regex Comment();

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\\n]|\\\\[\"\\\\n])*\"$")]
    private static partial Regex LabelPair();

    /// <summary>A strict reader of the Prometheus text format 0.0.4: every line is a HELP/TYPE comment or a sample;
    /// label pairs are well formed; every sample belongs to a declared family.</summary>
    private static Dictionary<string, double> ParsePrometheus(string text)
    {
        var values = new Dictionary<string, double>();
        var families = new HashSet<string>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0) continue;
            if (line.StartsWith('#'))
            {
                Assert.Matches(Comment(), line);
                if (line.StartsWith("# TYPE ", StringComparison.Ordinal)) families.Add(line.Split(' ')[2]);
                continue;
            }
            var m = Sample().Match(line);
            Assert.True(m.Success, $"not a sample line: {line}");
            var name = m.Groups["name"].Value;
            Assert.Contains(families, f => name == f || name.StartsWith(f + "_", StringComparison.Ordinal));
            if (m.Groups["labels"].Success && m.Groups["labels"].Value.Length > 0)
                foreach (var pair in SplitLabels(m.Groups["labels"].Value)) Assert.Matches(LabelPair(), pair);
            values[m.Groups["name"].Value + (m.Groups["labels"].Success ? "{" + m.Groups["labels"].Value + "}" : "")] =
                double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
        }
        return values;
    }

    private static IEnumerable<string> SplitLabels(string labels)
    {
        var sb = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < labels.Length; i++)
        {
            char c = labels[i];
            if (c == '\\' && quoted) { sb.Append(c).Append(labels[++i]); continue; }
            if (c == '"') quoted = !quoted;
            if (c == ',' && !quoted) { yield return sb.ToString(); sb.Clear(); continue; }
            sb.Append(c);
        }
        if (sb.Length > 0) yield return sb.ToString();
    }

    [Fact]
    public async Task Metrics_parse_as_prometheus_text_and_count_what_happened()
    {
        await gw.SubmitAsync("metrics@held.test");
        Dictionary<string, double> v = [];
        var deadline = DateTime.UtcNow + AdminGateway.Generous;
        while (DateTime.UtcNow < deadline)
        {
            var res = await gw.Http.GetAsync("metrics");
            Assert.Equal("text/plain", res.Content.Headers.ContentType?.MediaType);
            v = ParsePrometheus(await res.Content.ReadAsStringAsync());
            if (v.GetValueOrDefault("mtasts_recipients_deferred_total{destination=\"held.test\",status_class=\"4\"}") >= 1) break;
            await Task.Delay(200);
        }
        Assert.True(v["mtasts_messages_received_total"] >= 1);
        Assert.True(v["mtasts_received_bytes_total"] > 0);
        Assert.True(v["mtasts_accept_commit_seconds_count"] >= 1);
        Assert.True(v["mtasts_spool_fsync_seconds_count"] >= 1);
        Assert.True(v["mtasts_spool_commit_batch_operations_sum"] >= 1);
        Assert.True(v["mtasts_smtp_connections_total"] >= 1);
        Assert.True(v["mtasts_recipients_deferred_total{destination=\"held.test\",status_class=\"4\"}"] >= 1);
        Assert.True(v["mtasts_queue_recipients{destination=\"held.test\"}"] >= 1);
        Assert.True(v["mtasts_queue_recipients_total"] >= 1);
        Assert.True(v["mtasts_spool_messages"] >= 1);
        Assert.True(v["mtasts_spool_bytes"] > 0);
        // The process and the runtime.
        Assert.True(v["process_cpu_seconds_total"] > 0);
        Assert.True(v["process_working_set_bytes"] > 0);
        Assert.True(v["dotnet_total_memory_bytes"] > 0);
        Assert.Contains(v.Keys, k => k.StartsWith("dotnet_collection_count_total{generation=", StringComparison.Ordinal));
        Assert.True(v["dotnet_gc_pause_seconds_total"] >= 0);
        Assert.True(v["dotnet_gc_committed_bytes"] > 0);
        Assert.True(v["dotnet_threadpool_threads"] >= 1);
        Assert.True(v["dotnet_threadpool_completed_items_total"] >= 1);
        Assert.True(v["dotnet_threadpool_queue_length"] >= 0);
        Assert.True(v["dotnet_monitor_lock_contentions_total"] >= 0);
        // The lag probe samples every 10 ms from the gateway's start.
        Assert.True(v["mtasts_process_stall_seconds_count"] >= 1);
        Assert.True(v["mtasts_threadpool_lag_seconds_count"] >= 1);
        Assert.True(v["mtasts_threadpool_lag_seconds_bucket{le=\"+Inf\"}"] >= v["mtasts_threadpool_lag_seconds_count"]);
    }
}

public sealed class AdminOptionsTests
{
    private static AdminOptions Load(string hocon) =>
        AdminOptions.FromHocon(Akka.Configuration.ConfigurationFactory.ParseString(hocon));

    [Fact]
    public void Metrics_are_on_by_default_and_off_with_mtasts_admin_metrics_off()
    {
        Assert.True(Load("mtasts {}").Metrics);
        Assert.True(Load("mtasts.admin.metrics = on").Metrics);
        Assert.False(Load("mtasts.admin.metrics = off").Metrics);
        Assert.False(Load("mtasts.admin.metrics = false").Metrics);
        var e = Assert.Throws<GatewayConfigException>(() => Load("mtasts.admin.metrics = sometimes"));
        Assert.Contains(e.Errors, x => x.Contains("mtasts.admin.metrics = \"sometimes\": expected on or off", StringComparison.Ordinal));
    }

    [Fact]
    public void Default_is_loopback_8025_without_a_token()
    {
        var o = Load("mtasts {}");
        Assert.Equal("127.0.0.1:8025", Assert.Single(o.Endpoints).ToString());
        Assert.Null(o.Token);
        Assert.True(o.Enabled);
        Assert.False(Load("mtasts.admin.endpoints = []").Enabled);
    }

    [Theory]
    [InlineData("mtasts.admin.endpoints = [\"0.0.0.0:8025\"]", "0.0.0.0:8025 is not a loopback address; set mtasts.admin.token or token-file")]
    [InlineData("mtasts.admin.endpoints = [\"nowhere\"]", "mtasts.admin.endpoints: 'nowhere' is not an address:port")]
    [InlineData("mtasts.admin.token = short", "mtasts.admin.token: at least 16 characters")]
    [InlineData("mtasts.admin.token-file = /nonexistent/token", "mtasts.admin.token-file: file not found: /nonexistent/token")]
    public void Unsafe_or_broken_settings_are_refused_with_their_name(string hocon, string message)
    {
        var e = Assert.Throws<GatewayConfigException>(() => Load(hocon));
        Assert.Contains(e.Errors, x => x.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Named_tokens_are_read_from_the_config_or_a_file_and_allow_a_public_endpoint()
    {
        var file = Path.GetTempFileName();
        File.WriteAllText(file, "bob-secret-0123456789abc\n");
        try
        {
            var o = Load($"mtasts.admin {{ endpoints = [\"0.0.0.0:9025\"], tokens = [{{ name = alice, token = \"alice-secret-0123456789\" }}, {{ name = bob, token-file = \"{file}\" }}] }}");
            Assert.Null(o.Token);
            Assert.True(o.RequiresToken);
            Assert.Equal([new AdminToken("alice", "alice-secret-0123456789"), new AdminToken("bob", "bob-secret-0123456789abc")], o.Tokens);
            Assert.Equal("alice", o.Tokens[0].ToString()); // never the secret
            Assert.Empty(Load("mtasts.admin.tokens = []").Tokens);
        }
        finally { File.Delete(file); }
    }

    [Theory]
    [InlineData("mtasts.admin.tokens = [{ token = \"0123456789abcdefgh\" }]", "mtasts.admin.tokens[0].name: a name is required")]
    [InlineData("mtasts.admin.tokens = [{ name = a, token = short }]", "mtasts.admin.tokens[0].token (a): at least 16 characters")]
    [InlineData("mtasts.admin.tokens = [{ name = a }]", "mtasts.admin.tokens[0] (a): token or token-file is required")]
    [InlineData("mtasts.admin.tokens = [{ name = a, token-file = /nonexistent/t }]", "mtasts.admin.tokens[0].token-file (a): file not found: /nonexistent/t")]
    [InlineData("mtasts.admin.tokens = [{ name = a, tokn = x }]", "mtasts.admin.tokens[0]: unknown setting \"tokn\"")]
    [InlineData("mtasts.admin.tokens = [{ name = a, token = \"0123456789abcdefgh\" }, { name = a, token = \"0123456789abcdefgi\" }]", "the name \"a\" is used twice")]
    [InlineData("mtasts.admin.tokens = \"x\"", "mtasts.admin.tokens must be a list")]
    public void Broken_named_tokens_are_refused_with_their_place(string hocon, string message)
    {
        var e = Assert.Throws<GatewayConfigException>(() => Load(hocon));
        Assert.Contains(e.Errors, x => x.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void A_token_file_allows_a_public_endpoint()
    {
        var file = Path.GetTempFileName();
        File.WriteAllText(file, "from-a-file-0123456789\n");
        try
        {
            var o = Load($"mtasts.admin {{ endpoints = [\"0.0.0.0:9025\"], token-file = \"{file}\" }}");
            Assert.Equal("from-a-file-0123456789", o.Token);
        }
        finally { File.Delete(file); }
    }
}
