using System.Net;
using System.Text.Json;
using MtaSts.Actors.Admin;
using MtaSts.Actors.Engine.Hosting;

namespace MtaSts.Actors.Host.Tests.Admin;

/// <summary>
/// <c>mtasts.admin.metrics = off</c> (in process: one gateway, the admin endpoint started with metrics off, then on):
/// off leaves no observer on the operator log — nothing is recorded per event — and /metrics answers 404; on records
/// again, and stopping the endpoint removes the observer.
/// </summary>
public sealed class MetricsSwitchTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mtasts-metrics-switch-" + Guid.NewGuid().ToString("N"));
    private Gateway _gw = null!;

    public async Task InitializeAsync() =>
        _gw = await Gateway.StartAsync(GatewayConfig.Load(GatewayConfig.DefaultFiles(), $$"""
            mtasts {
              data-dir = "{{Path.Combine(_dir, "data").Replace("\\", "/")}}"
              listener.endpoints = ["127.0.0.1:0"]
              log.text = ""
            }
            """));

    private static AdminOptions Options(string metrics) =>
        AdminOptions.FromHocon(Akka.Configuration.ConfigurationFactory.ParseString($"mtasts.admin {{ endpoints = [\"127.0.0.1:0\"], metrics = {metrics} }}"));

    [Fact]
    public async Task Metrics_off_records_nothing_and_metrics_answers_404_metrics_on_records()
    {
        Assert.False(_gw.Log.IsObserved);
        await using (var off = await AdminServer.StartAsync(_gw, Options("off")))
        {
            using var http = new HttpClient { BaseAddress = off.Urls[0] };
            Assert.False(_gw.Log.IsObserved);
            var res = await http.GetAsync("metrics");
            Assert.Equal(HttpStatusCode.NotFound, res.StatusCode);
            Assert.Contains("metrics are off on this gateway (mtasts.admin.metrics = off)", await res.Content.ReadAsStringAsync());
            using var stats = JsonDocument.Parse(await http.GetStringAsync("api/stats"));
            Assert.False(stats.RootElement.GetProperty("metrics").GetBoolean());
            Assert.Equal(JsonValueKind.Null, stats.RootElement.GetProperty("delivered").ValueKind);
            Assert.Equal(0, stats.RootElement.GetProperty("queue_recipients").GetInt32());
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health/ready")).StatusCode); // the rest works as before
        }

        await using (var on = await AdminServer.StartAsync(_gw, Options("on")))
        {
            using var http = new HttpClient { BaseAddress = on.Urls[0] };
            Assert.True(_gw.Log.IsObserved);
            _gw.Log.Info("icid_new", "New SMTP ICID 1 interface 127.0.0.1 address 127.0.0.1 port 1 (metrics switch test)");
            var text = await http.GetStringAsync("metrics");
            Assert.Matches(new System.Text.RegularExpressions.Regex(@"^mtasts_smtp_connections_total 1(\.0)?$", System.Text.RegularExpressions.RegexOptions.Multiline), text);
            using var stats = JsonDocument.Parse(await http.GetStringAsync("api/stats"));
            Assert.True(stats.RootElement.GetProperty("metrics").GetBoolean());
            Assert.Equal(0, stats.RootElement.GetProperty("delivered").GetInt64());
        }
        Assert.False(_gw.Log.IsObserved);
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
