using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace MtaSts.Actors.Host.Cli;

/// <summary>
/// Admin commands: a running <c>serve</c> through its admin API. <c>queue</c> (the queue's shape by destination and
/// message age, like Postfix <c>qshape</c>), <c>queue show DOMAIN</c>, <c>message MID</c>, <c>deliver-now [DOMAIN]</c>,
/// <c>policy show DOMAIN</c>, <c>policy purge DOMAIN</c>, <c>cluster</c> (members). Tables are Spectre.Console; <c>--json</c> prints the API's
/// answer unchanged.
/// </summary>
internal static class AdminCommands
{
    private const string AdminExitCodes = "Exit codes: 0 ok, 1 not found, 2 usage or configuration error, 3 admin endpoint unreachable or token rejected.";

    public static IEnumerable<Command> Create()
    {
        yield return Queue();
        yield return Message();
        yield return DeliverNow();
        yield return Remove(bounce: true);
        yield return Remove(bounce: false);
        yield return SuspendOrResume(suspend: true);
        yield return SuspendOrResume(suspend: false);
        yield return Policy();
        yield return DestConfig();
        yield return ClusterMembers();
    }

    // ------------------------------------------------------------------ queue

    private static Command Queue()
    {
        var queue = new Command("queue", "The queue by destination and message age (like Postfix qshape)");
        var o = AdminConnectionOptions.AddTo(queue);
        Help.Epilogue(queue, $"""
            Recipients still owed per destination, split by the age of their message: 0-5m, 5-10m, 10-20m, 20-40m,
            40-80m, 80-160m, 160m+ (GET /api/queue). The deepest destinations first; TOTAL on top.

            {AdminExitCodes}
            """);
        queue.SetAction((p, ct) => RunAsync(p, o, "reading the queue", async (client, output) =>
        {
            var body = await client.GetAsync("api/queue?limit=10000", ct).ConfigureAwait(false);
            if (p.GetValue(o.Json)) return Raw(output, body);
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            var total = root.GetProperty("total");
            var rows = root.GetProperty("destinations").EnumerateArray().ToArray();
            var labels = total.GetProperty("recipients_by_age").EnumerateObject().Select(b => b.Name).ToArray();
            var table = new Table().Border(TableBorder.Simple).AddColumn("destination").AddColumn(new TableColumn("total").RightAligned());
            foreach (var l in labels) table.AddColumn(new TableColumn(l).RightAligned());
            table.AddRow([new Text("TOTAL"), Num(total.GetProperty("recipients")), .. labels.Select(l => Num(total.GetProperty("recipients_by_age").GetProperty(l)))]);
            foreach (var r in rows)
                table.AddRow([new Text((r.GetProperty("domain").GetString() ?? "")
                        + (r.TryGetProperty("suspended", out var su) && su.ValueKind == JsonValueKind.True ? " (suspended)"
                            : r.TryGetProperty("throttle", out var th) && th.ValueKind == JsonValueKind.Object ? " (throttled)" : "")), Num(r.GetProperty("recipients")),
                    .. labels.Select(l => Num(r.GetProperty("recipients_by_age").GetProperty(l)))]);
            var console = Console(output);
            console.Write(table);
            console.WriteLine($"{Count(total.GetProperty("destinations"), "destination")} with queued mail, {Count(total.GetProperty("recipients"), "recipient")}, "
                + $"{Count(total.GetProperty("spool_messages"), "message")} in the spool");
            return GatewayCli.ExitOk;
        }));
        queue.Subcommands.Add(QueueShow());
        queue.Subcommands.Add(QueueRemove(bounce: true));
        queue.Subcommands.Add(QueueRemove(bounce: false));
        return queue;
    }

    private static Command QueueShow()
    {
        var domain = DomainArgument();
        var offset = new Option<int>("--offset") { Description = "skip this many messages (oldest first)", HelpName = "N", DefaultValueFactory = _ => 0 };
        var limit = new Option<int>("--limit") { Description = "show at most this many messages (1-1000)", HelpName = "N", DefaultValueFactory = _ => 50 };
        offset.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 0) r.AddError("--offset: must be 0 or more"); });
        limit.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 1000) r.AddError("--limit: must be 1 to 1000"); });
        var show = new Command("show", "One destination: its status and its queued messages, oldest first") { domain, offset, limit };
        var o = AdminConnectionOptions.AddTo(show);
        Help.Epilogue(show, $"""
            Status (recipients, deferred, connections in use of the maximum, oldest message, next attempt, last error,
            MTA-STS policy, TLS, DANE) and one page of messages (GET /api/queue/DOMAIN?offset=N&limit=N).

            {AdminExitCodes}
            """);
        show.SetAction((p, ct) => RunAsync(p, o, "reading the destination", async (client, output) =>
        {
            var d = p.GetValue(domain)!;
            var body = await client.GetAsync($"api/queue/{Uri.EscapeDataString(d)}?offset={p.GetValue(offset)}&limit={p.GetValue(limit)}", ct).ConfigureAwait(false);
            if (p.GetValue(o.Json)) return Raw(output, body);
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            var console = Console(output);
            var messages = root.GetProperty("messages").EnumerateArray().ToArray();
            if (root.GetProperty("destination") is { ValueKind: JsonValueKind.Object } row)
            {
                var grid = new Grid().AddColumn().AddColumn();
                void Add(string k, string? v) { if (!string.IsNullOrEmpty(v)) grid.AddRow(new Text(k), new Text(v)); }
                Add("destination", Str(row, "domain"));
                Add("state", row.TryGetProperty("suspended", out var su) && su.ValueKind == JsonValueKind.True
                    ? $"suspended since {When(row, "suspended_since")} by {Str(row, "suspended_by")} (resume: mtasts-gateway resume {Str(row, "domain")})"
                    : row.TryGetProperty("throttle", out var th) && th.ValueKind == JsonValueKind.Object ? Throttled(th)
                    : su.ValueKind == JsonValueKind.False ? "delivering" : null);
                Add("recipients", $"{Str(row, "recipients")} in {Count(row.GetProperty("messages"), "message")}, {Str(row, "deferred") ?? "?"} deferred");
                Add("connections", $"{Str(row, "in_flight_connections") ?? "?"} of {Str(row, "max_connections")}");
                Add("oldest", $"{When(row, "oldest")} ({Age(row.GetProperty("oldest_age_seconds").GetInt64())} ago)");
                Add("next attempt", When(row, "next_attempt"));
                Add("last error", Str(row, "last_error"));
                Add("MTA-STS", row.GetProperty("mta_sts").GetBoolean()
                    ? Str(row, "policy_mode") is { } mode ? $"{mode} (policy id {Str(row, "policy_id")})" : "on (no policy cached)"
                    : "off");
                Add("TLS", Str(row, "tls"));
                Add("DANE", Str(row, "dane"));
                if (!row.GetProperty("status_known").GetBoolean()) Add("note", "the destination did not answer in time: its status is unknown");
                console.Write(grid);
                console.WriteLine();
            }
            else if (root.GetProperty("status") is { ValueKind: JsonValueKind.Object } st && st.GetProperty("suspended").GetBoolean())
                console.WriteLine($"destination {d}: suspended since {When(st, "suspended_since")} by {Str(st, "suspended_by")}");
            if (messages.Length == 0)
            {
                console.WriteLine(p.GetValue(offset) == 0 ? $"nothing queued for {d}" : $"no messages past offset {p.GetValue(offset)}");
                return GatewayCli.ExitOk;
            }
            var table = new Table().Border(TableBorder.Simple)
                .AddColumn(new TableColumn("MID").RightAligned()).AddColumn("received").AddColumn(new TableColumn("age").RightAligned())
                .AddColumn(new TableColumn("bytes").RightAligned()).AddColumn("from").AddColumn("recipients");
            var now = DateTimeOffset.UtcNow;
            foreach (var m in messages)
            {
                var received = m.GetProperty("received_at").GetDateTimeOffset();
                table.AddRow(Num(m.GetProperty("mid")), new Text(received.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)),
                    new Text(Age((long)(now - received).TotalSeconds)), Num(m.GetProperty("bytes")), new Text(Str(m, "from") is { Length: > 0 } f ? f : "<>"),
                    new Text(string.Join(", ", m.GetProperty("recipients").EnumerateArray().Select(r => r.GetProperty("address").GetString()))));
            }
            console.Write(table);
            if (messages.Length == p.GetValue(limit))
                console.WriteLine($"more may follow: --offset {p.GetValue(offset) + messages.Length}");
            return GatewayCli.ExitOk;
        }));
        return show;
    }

    // ------------------------------------------------------------------ message

    private static Command Message()
    {
        var mid = new Argument<long>("MID") { Description = "the message id (as in \"queued as MID\" and the mail log)" };
        var command = new Command("message", "One queued message by MID: sender, size, outstanding recipients") { mid };
        var o = AdminConnectionOptions.AddTo(command);
        Help.Epilogue(command, $"GET /api/messages/MID. Not queued on this node: exit 1.\n\n{AdminExitCodes}");
        command.SetAction((p, ct) => RunAsync(p, o, "reading the message", async (client, output) =>
        {
            var body = await client.GetAsync($"api/messages/{p.GetValue(mid).ToString(CultureInfo.InvariantCulture)}", ct).ConfigureAwait(false);
            if (p.GetValue(o.Json)) return Raw(output, body);
            using var doc = JsonDocument.Parse(body);
            var m = doc.RootElement;
            var received = m.GetProperty("received_at").GetDateTimeOffset();
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("MID", Str(m, "mid")!);
            grid.AddRow("from", Str(m, "from") is { Length: > 0 } f ? f : "<>");
            grid.AddRow("received", $"{received.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)} ({Age((long)(DateTimeOffset.UtcNow - received).TotalSeconds)} ago)");
            grid.AddRow("bytes", Str(m, "bytes")!);
            var console = Console(output);
            console.Write(grid);
            console.WriteLine();
            var table = new Table().Border(TableBorder.Simple).AddColumn(new TableColumn("RID").RightAligned()).AddColumn("recipient").AddColumn("destination");
            foreach (var r in m.GetProperty("recipients").EnumerateArray())
                table.AddRow(Num(r.GetProperty("rid")), new Text(Str(r, "address") ?? ""), new Text(Str(r, "domain") ?? ""));
            console.Write(table);
            return GatewayCli.ExitOk;
        }));
        command.Subcommands.Add(MessageRemove(bounce: true));
        command.Subcommands.Add(MessageRemove(bounce: false));
        return command;
    }

    // ------------------------------------------------------------------ bounce / delete

    private static Command MessageRemove(bool bounce)
    {
        var mid = new Argument<long>("MID") { Description = "the message id" };
        var command = new Command(bounce ? "bounce" : "delete", bounce
            ? "Bounce a queued message: a DSN to its sender (failed, 5.0.0, \"deleted by the operator\"), then it leaves the queue"
            : "Delete a queued message: it leaves the queue, no DSN (like postsuper -d)") { mid };
        var o = AdminConnectionOptions.AddTo(command);
        Help.Epilogue(command, $"""
            {(bounce ? "POST /api/messages/MID/bounce" : "DELETE /api/messages/MID")}. Every outstanding recipient of the message on this node,
            at every destination, is marked done in the spool (it does not come back after a restart) and leaves the queue;
            recipients in an SMTP transaction right now are left alone (counted as in flight). Logged as
            `Operator action: {(bounce ? "bounce" : "delete")} MID … by <token> from <client>`. Not queued: exit 1.

            {AdminExitCodes}
            """);
        command.SetAction((p, ct) => RunAsync(p, o, bounce ? "bouncing" : "deleting", async (client, output) =>
        {
            var m = p.GetValue(mid).ToString(CultureInfo.InvariantCulture);
            var body = await client.SendAsync(bounce ? HttpMethod.Post : HttpMethod.Delete, bounce ? $"api/messages/{m}/bounce" : $"api/messages/{m}", ct).ConfigureAwait(false);
            return p.GetValue(o.Json) ? Raw(output, body) : await Removed(output, body, $"MID {m}").ConfigureAwait(false);
        }));
        return command;
    }

    private static Command QueueRemove(bool bounce)
    {
        var domain = DomainArgument();
        var command = new Command(bounce ? "bounce" : "delete", bounce
            ? "Bounce everything queued for a destination: a DSN to each sender (5.0.0, \"deleted by the operator\")"
            : "Delete everything queued for a destination, no DSN") { domain };
        var o = AdminConnectionOptions.AddTo(command);
        Help.Epilogue(command, $"""
            {(bounce ? "POST /api/destinations/DOMAIN/bounce" : "DELETE /api/destinations/DOMAIN/queue")}. The recipients are marked done in the
            spool (they do not come back after a restart); recipients in an SMTP transaction right now are left alone (suspend
            the destination first to be sure). Logged as `Operator action: {(bounce ? "bounce" : "delete")} the queue of destination … by …`.

            {AdminExitCodes}
            """);
        command.SetAction((p, ct) => RunAsync(p, o, bounce ? "bouncing" : "deleting", async (client, output) =>
        {
            var d = p.GetValue(domain)!;
            var body = await client.SendAsync(bounce ? HttpMethod.Post : HttpMethod.Delete,
                bounce ? $"api/destinations/{Uri.EscapeDataString(d)}/bounce" : $"api/destinations/{Uri.EscapeDataString(d)}/queue", ct).ConfigureAwait(false);
            return p.GetValue(o.Json) ? Raw(output, body) : await Removed(output, body, $"destination {d}").ConfigureAwait(false);
        }));
        return command;
    }

    /// <summary>Top-level <c>bounce MID | --domain D</c> and <c>delete MID | --domain D</c> (the issue's form; the same as
    /// <c>message bounce|delete</c> and <c>queue bounce|delete</c>).</summary>
    private static Command Remove(bool bounce)
    {
        var mid = new Argument<long?>("MID") { Description = "the message id", Arity = ArgumentArity.ZeroOrOne };
        var domain = new Option<string?>("--domain") { Description = "every message queued for this destination instead of one MID", HelpName = "DOMAIN" };
        var command = new Command(bounce ? "bounce" : "delete", bounce
            ? "Bounce a queued message or a destination's whole queue: DSN to the sender (5.0.0, \"deleted by the operator\")"
            : "Delete a queued message or a destination's whole queue, no DSN") { mid, domain };
        command.Validators.Add(r =>
        {
            var hasMid = r.GetValue(mid) is not null;
            var hasDomain = r.GetValue(domain) is not null;
            if (hasMid == hasDomain) r.AddError("give either a MID or --domain DOMAIN");
            if (r.GetValue(domain) is { } d && (d.Contains('@') || d.Any(c => char.IsWhiteSpace(c) || c is '/' or '?' or '#' or '\\')))
                r.AddError($"--domain: '{d}' is not a domain name");
        });
        var o = AdminConnectionOptions.AddTo(command);
        Help.Epilogue(command, $"""
            Same as `message {(bounce ? "bounce" : "delete")} MID` and `queue {(bounce ? "bounce" : "delete")} DOMAIN` (see their help).

            {AdminExitCodes}
            """);
        command.SetAction((p, ct) => RunAsync(p, o, bounce ? "bouncing" : "deleting", async (client, output) =>
        {
            string body, what;
            if (p.GetValue(mid) is { } m)
            {
                var text = m.ToString(CultureInfo.InvariantCulture);
                body = await client.SendAsync(bounce ? HttpMethod.Post : HttpMethod.Delete, bounce ? $"api/messages/{text}/bounce" : $"api/messages/{text}", ct).ConfigureAwait(false);
                what = $"MID {text}";
            }
            else
            {
                var d = p.GetValue(domain)!.Trim().TrimEnd('.').ToLowerInvariant();
                body = await client.SendAsync(bounce ? HttpMethod.Post : HttpMethod.Delete,
                    bounce ? $"api/destinations/{Uri.EscapeDataString(d)}/bounce" : $"api/destinations/{Uri.EscapeDataString(d)}/queue", ct).ConfigureAwait(false);
                what = $"destination {d}";
            }
            return p.GetValue(o.Json) ? Raw(output, body) : await Removed(output, body, what).ConfigureAwait(false);
        }));
        return command;
    }

    private static async Task<int> Removed(TextWriter output, string body, string what)
    {
        using var doc = JsonDocument.Parse(body);
        var r = doc.RootElement;
        var bounce = r.GetProperty("action").GetString() == "bounce";
        var inFlight = r.GetProperty("in_flight").GetInt32();
        await output.WriteLineAsync($"{what}: {Count(r.GetProperty("recipients"), "recipient")} of {Count(r.GetProperty("messages"), "message")} "
            + (bounce ? "bounced (DSN to the sender)" : "deleted (no DSN)")
            + (inFlight > 0 ? $"; {Count(inFlight, "recipient")} in an SMTP transaction left alone" : "")).ConfigureAwait(false);
        return GatewayCli.ExitOk;
    }

    // ------------------------------------------------------------------ suspend / resume

    private static Command SuspendOrResume(bool suspend)
    {
        var domain = DomainArgument();
        var command = new Command(suspend ? "suspend" : "resume", suspend
            ? "Suspend delivery to a destination: no connection is opened, its mail stays queued (survives a restart)"
            : "Resume delivery to a suspended destination") { domain };
        var o = AdminConnectionOptions.AddTo(command);
        Help.Epilogue(command, $"""
            POST /api/destinations/DOMAIN/{(suspend ? "suspend" : "resume")}. The suspension is kept in the destination's journal: it
            survives a restart of the gateway and is shown by `queue` and `queue show`. While suspended, mail still expires
            (and bounces) after the bounce profile's max-time-in-queue; retries are not used up. After resume, due mail goes
            at once and deferred mail at its retry time (`deliver-now DOMAIN` to retry it at once). Logged as
            `Operator action: {(suspend ? "suspend" : "resume")} destination … by <token> from <client>`.

            {AdminExitCodes}
            """);
        command.SetAction((p, ct) => RunAsync(p, o, suspend ? "suspending" : "resuming", async (client, output) =>
        {
            var d = p.GetValue(domain)!;
            var body = await client.SendAsync(HttpMethod.Post, $"api/destinations/{Uri.EscapeDataString(d)}/{(suspend ? "suspend" : "resume")}", ct).ConfigureAwait(false);
            if (p.GetValue(o.Json)) return Raw(output, body);
            using var doc = JsonDocument.Parse(body);
            var r = doc.RootElement;
            await output.WriteLineAsync(r.GetProperty("suspended").GetBoolean()
                ? $"destination {d} suspended since {When(r, "suspended_since")} by {Str(r, "suspended_by")}; {Count(r.GetProperty("queued_recipients"), "recipient")} queued"
                : $"destination {d} delivering; {Count(r.GetProperty("queued_recipients"), "recipient")} queued").ConfigureAwait(false);
            return GatewayCli.ExitOk;
        }));
        return command;
    }

    // ------------------------------------------------------------------ deliver-now

    private static Command DeliverNow()
    {
        var domain = DomainArgument();
        domain.Arity = ArgumentArity.ZeroOrOne;
        domain.Description = "only this destination (default: every destination with queued mail)";
        var command = new Command("deliver-now", "Retry deferred recipients at once (like postqueue -f; SIGUSR1 of serve)") { domain };
        var o = AdminConnectionOptions.AddTo(command);
        Help.Epilogue(command, $"POST /api/deliver-now[?domain=DOMAIN]; logged by the gateway as `Operator action: deliver now … by <token> from <client>`.\n\n{AdminExitCodes}");
        command.SetAction((p, ct) => RunAsync(p, o, "asking the gateway", async (client, output) =>
        {
            var d = p.GetValue(domain);
            var body = await client.SendAsync(HttpMethod.Post, d is null ? "api/deliver-now" : $"api/deliver-now?domain={Uri.EscapeDataString(d)}", ct).ConfigureAwait(false);
            if (p.GetValue(o.Json)) return Raw(output, body);
            using var doc = JsonDocument.Parse(body);
            var n = doc.RootElement.GetProperty("destinations").GetInt32();
            await output.WriteLineAsync(d is null
                ? $"deliver now: {Count(n, "destination")} with queued mail retried at once"
                : $"deliver now: destination {d} retried at once").ConfigureAwait(false);
            return GatewayCli.ExitOk;
        }));
        return command;
    }

    // ------------------------------------------------------------------ policy

    private static Command Policy()
    {
        var policy = new Command("policy", "The gateway's MTA-STS policy cache: show or purge a domain's policy");
        Help.Epilogue(policy, AdminExitCodes);

        var domain = DomainArgument();
        var show = new Command("show", "The cached MTA-STS policy of a domain (id, mode, mx, max_age, fetched, expires)") { domain };
        var o = AdminConnectionOptions.AddTo(show);
        Help.Epilogue(show, $"GET /api/policies/DOMAIN. No policy cached: exit 1.\n\n{AdminExitCodes}");
        show.SetAction((p, ct) => RunAsync(p, o, "reading the policy cache", async (client, output) =>
        {
            var body = await client.GetAsync($"api/policies/{Uri.EscapeDataString(p.GetValue(domain)!)}", ct).ConfigureAwait(false);
            if (p.GetValue(o.Json)) return Raw(output, body);
            using var doc = JsonDocument.Parse(body);
            var r = doc.RootElement;
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("domain", Str(r, "domain") ?? "");
            grid.AddRow("policy id", Str(r, "id") ?? "");
            grid.AddRow("mode", Str(r, "mode") ?? "");
            grid.AddRow("mx", string.Join(", ", r.GetProperty("mx").EnumerateArray().Select(m => m.GetString())));
            grid.AddRow("max_age", $"{Str(r, "max_age")} s");
            grid.AddRow("fetched", When(r, "fetched_at") ?? "");
            grid.AddRow("expires", When(r, "expires_at") ?? "");
            Console(output).Write(grid);
            return GatewayCli.ExitOk;
        }));

        var purgeDomain = DomainArgument();
        var purge = new Command("purge", "Drop a domain's cached MTA-STS policy: the next delivery fetches it again") { purgeDomain };
        var po = AdminConnectionOptions.AddTo(purge);
        Help.Epilogue(purge, $"DELETE /api/policies/DOMAIN; logged by the gateway as `Operator action: purge MTA-STS policy … by <token> from <client>`. None cached: exit 1.\n\n{AdminExitCodes}");
        purge.SetAction((p, ct) => RunAsync(p, po, "purging", async (client, output) =>
        {
            var d = p.GetValue(purgeDomain)!;
            var body = await client.SendAsync(HttpMethod.Delete, $"api/policies/{Uri.EscapeDataString(d)}", ct).ConfigureAwait(false);
            if (p.GetValue(po.Json)) return Raw(output, body);
            await output.WriteLineAsync($"purged the cached MTA-STS policy of {d} (the next delivery fetches it again)").ConfigureAwait(false);
            return GatewayCli.ExitOk;
        }));

        var refreshDomain = DomainArgument();
        var refresh = new Command("refresh", "Fetch a domain's MTA-STS policy now (TXT lookup and HTTPS fetch; cache and negative cache bypassed)") { refreshDomain };
        var ro = AdminConnectionOptions.AddTo(refresh);
        Help.Epilogue(refresh, $"""
            POST /api/policies/DOMAIN/refresh (through the gateway's policy resolver, its proxy and timeouts). Prints the policy
            now in force, or why there is none: exit 1 when the domain has no usable policy (no TXT record, fetch failed).
            Logged as `Operator action: refresh MTA-STS policy for the domain (…) by …`.

            {AdminExitCodes}
            """);
        refresh.SetAction((p, ct) => RunAsync(p, ro, "fetching the policy", async (client, output) =>
        {
            var d = p.GetValue(refreshDomain)!;
            var body = await client.SendAsync(HttpMethod.Post, $"api/policies/{Uri.EscapeDataString(d)}/refresh", ct).ConfigureAwait(false);
            using var doc = JsonDocument.Parse(body);
            var r = doc.RootElement;
            var ok = Str(r, "result") == "policy";
            if (p.GetValue(ro.Json))
            {
                Raw(output, body);
                return ok ? GatewayCli.ExitOk : GatewayCli.ExitNotFound;
            }
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("domain", d);
            grid.AddRow("result", $"{Str(r, "result")} ({Str(r, "source") ?? "-"})");
            if (r.TryGetProperty("policy", out var pol) && pol.ValueKind == JsonValueKind.Object)
            {
                grid.AddRow("policy id", Str(pol, "id") ?? "");
                grid.AddRow("mode", Str(pol, "mode") ?? "");
                grid.AddRow("mx", string.Join(", ", pol.GetProperty("mx").EnumerateArray().Select(m => m.GetString())));
                grid.AddRow("max_age", $"{Str(pol, "max_age")} s");
                grid.AddRow("expires", When(pol, "expires_at") ?? "");
            }
            else if (Str(r, "id") is { } id) grid.AddRow("policy id", id);
            if (Str(r, "error") is { Length: > 0 } error) grid.AddRow("error", error);
            Console(output).Write(grid);
            return ok ? GatewayCli.ExitOk : GatewayCli.ExitNotFound;
        }));

        policy.Subcommands.Add(show);
        policy.Subcommands.Add(purge);
        policy.Subcommands.Add(refresh);
        return policy;
    }

    // ------------------------------------------------------------------ destconfig

    private static Command DestConfig()
    {
        var command = new Command("destconfig", "Destination and bounce profiles as a file: export the effective ones, import (validate, install, apply live)");
        Help.Epilogue(command, AdminExitCodes);

        var file = new Option<string?>("--file") { Description = "write to this file instead of standard output", HelpName = "FILE" };
        var export = new Command("export", "Print the effective destination and bounce profiles (hocon/destinations.conf format, every setting spelled out)") { file };
        var eo = AdminConnectionOptions.AddTo(export);
        Help.Epilogue(export, $"""
            GET /api/destconfig: the profiles in force in the running gateway (after reloads and imports). Importing the
            export gives the same effective profiles.

            {AdminExitCodes}
            """);
        export.SetAction((p, ct) => RunAsync(p, eo, "reading the destination profiles", async (client, output) =>
        {
            var text = await client.GetAsync("api/destconfig", ct).ConfigureAwait(false);
            if (p.GetValue(file) is { } path)
            {
                await File.WriteAllTextAsync(path, text, ct).ConfigureAwait(false);
                if (!p.GetValue(eo.Json)) await output.WriteLineAsync($"destination profiles written to {path}").ConfigureAwait(false);
            }
            else await output.WriteAsync(text).ConfigureAwait(false);
            return GatewayCli.ExitOk;
        }));

        var source = new Argument<string>("FILE") { Description = "a destconfig file (mtasts.destinations and mtasts.bounce-profiles)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "validate and show what would change; install nothing" };
        var import = new Command("import", "Validate a destconfig file and install it in the running gateway (applied live)") { source, dryRun };
        var io = AdminConnectionOptions.AddTo(import);
        Help.Epilogue(import, $"""
            PUT /api/destconfig[?dry_run=true] with the file. The gateway validates it with the same rules as its configuration
            (every error with its line and setting; exit 2 and nothing applied if anything is invalid), then installs it as
            <data-dir>/destconfig.conf, where its configuration watcher reads it: from then on it replaces mtasts.destinations
            and mtasts.bounce-profiles of the configuration files (remove that file to go back to them). Prints the profiles
            added, removed and changed. Logged as `Operator action: destconfig import … by …`.

            {AdminExitCodes}
            """);
        import.SetAction((p, ct) => RunAsync(p, io, "importing", async (client, output) =>
        {
            var path = p.GetValue(source)!;
            if (!File.Exists(path)) throw new CliException(GatewayCli.ExitUsage, $"file not found: {path}");
            var text = await File.ReadAllTextAsync(path, ct).ConfigureAwait(false);
            var dry = p.GetValue(dryRun);
            var body = await client.SendAsync(HttpMethod.Put, dry ? "api/destconfig?dry_run=true" : "api/destconfig",
                new StringContent(text, System.Text.Encoding.UTF8, "text/plain"), ct).ConfigureAwait(false);
            if (p.GetValue(io.Json)) return Raw(output, body);
            using var doc = JsonDocument.Parse(body);
            var r = doc.RootElement;
            var changes = r.GetProperty("changes");
            string List(string name) => changes.GetProperty(name).GetArrayLength() == 0 ? "none"
                : string.Join(", ", changes.GetProperty(name).EnumerateArray().Select(e => e.GetString()));
            await output.WriteLineAsync(dry ? $"{path} is valid (dry run: nothing installed)" : $"{path} installed as {Str(r, "file")} and in force").ConfigureAwait(false);
            await output.WriteLineAsync($"  destinations added: {List("added")}; removed: {List("removed")}; changed: {List("changed")}").ConfigureAwait(false);
            await output.WriteLineAsync($"  bounce profiles added: {List("bounce_profiles_added")}; removed: {List("bounce_profiles_removed")}; changed: {List("bounce_profiles_changed")}").ConfigureAwait(false);
            return GatewayCli.ExitOk;
        }));

        command.Subcommands.Add(export);
        command.Subcommands.Add(import);
        return command;
    }

    // ------------------------------------------------------------------ cluster

    private static Command ClusterMembers()
    {
        var command = new Command("cluster", "The cluster's members as this node sees them: address, status, roles, reachability, leader, oldest");
        var o = AdminConnectionOptions.AddTo(command);
        Help.Epilogue(command, $"""
            GET /api/cluster. Members from this node's latest gossip (status Joining, Up, Leaving, …); "reachable" is this
            node's own failure detector, "reported unreachable" that some member's detector reports it. Ask each node:
            while the cluster converges their answers differ. A single node (mtasts.cluster.formation = single-node)
            answers "not clustered".

            {AdminExitCodes}
            """);
        command.SetAction((p, ct) => RunAsync(p, o, "reading the cluster state", async (client, output) =>
        {
            var body = await client.GetAsync("api/cluster", ct).ConfigureAwait(false);
            if (p.GetValue(o.Json)) return Raw(output, body);
            using var doc = JsonDocument.Parse(body);
            var r = doc.RootElement;
            var intake = Str(r, "intake") == "open" ? "SMTP intake open" : $"SMTP intake closed: {Str(r, "intake_refusal")}";
            if (!r.GetProperty("clustered").GetBoolean())
            {
                await output.WriteLineAsync($"not clustered (mtasts.cluster.formation = {Str(r, "formation")}): this node {Str(r, "self_address")} is " +
                    $"{Str(r, "self_status")}; {intake}").ConfigureAwait(false);
                return GatewayCli.ExitOk;
            }
            var grid = new Grid().AddColumn().AddColumn();
            grid.AddRow("this node", $"{Str(r, "self_address")} ({Str(r, "self_status")}); {intake}");
            grid.AddRow("formation", Str(r, "formation") ?? "");
            grid.AddRow("leader", Str(r, "leader") ?? "none");
            grid.AddRow("oldest", Str(r, "oldest") ?? "none");
            var console = Console(output);
            console.Write(grid);
            console.WriteLine();
            var table = new Table().Border(TableBorder.Simple).AddColumn("address").AddColumn("status").AddColumn("roles")
                .AddColumn("reachable").AddColumn("");
            var members = r.GetProperty("members").EnumerateArray().ToArray();
            foreach (var m in members)
            {
                var reach = m.GetProperty("reachable").GetBoolean() ? "yes" : "NO";
                if (m.GetProperty("reported_unreachable").GetBoolean()) reach += " (reported unreachable)";
                var marks = new[] { "self", "leader", "oldest" }.Where(k => m.GetProperty(k).GetBoolean());
                table.AddRow(new Text(Str(m, "address") ?? ""), new Text(Str(m, "status") ?? ""),
                    new Text(string.Join(", ", m.GetProperty("roles").EnumerateArray().Select(x => x.GetString()))), new Text(reach),
                    new Text(string.Join(", ", marks)));
            }
            console.Write(table);
            console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{Count(members.Length, "member")}: {members.Count(m => Str(m, "status") == "up")} Up, " +
                $"{r.GetProperty("unreachable").GetArrayLength()} reported unreachable"));
            return GatewayCli.ExitOk;
        }));
        return command;
    }

    // ------------------------------------------------------------------ helpers

    private static Argument<string> DomainArgument() => new("DOMAIN")
    {
        Description = "destination domain",
        CustomParser = r =>
        {
            var d = r.Tokens[0].Value.Trim().TrimEnd('.').ToLowerInvariant();
            if (d.Length == 0 || d.Contains('@') || d.Any(c => char.IsWhiteSpace(c) || c is '/' or '?' or '#' or '\\'))
                r.AddError($"'{r.Tokens[0].Value}' is not a domain name" + (d.Contains('@') ? " (give the domain, not a mail address)" : ""));
            return d;
        },
    };

    private static async Task<int> RunAsync(ParseResult p, AdminConnectionOptions o, string what, Func<AdminClient, TextWriter, Task<int>> body)
    {
        using var client = o.Connect(p);
        var output = p.InvocationConfiguration.Output;
        return await Spinner.RunAsync(output, p.GetValue(o.Json), what, () => body(client, output)).ConfigureAwait(false);
    }

    private static int Raw(TextWriter output, string body)
    {
        output.WriteLine(body);
        return GatewayCli.ExitOk;
    }

    /// <summary>A Spectre console over <paramref name="output"/>: colours and the terminal's width only on a real
    /// terminal; plain text 200 columns wide otherwise (pipes, scripts, tests).</summary>
    private static IAnsiConsole Console(TextWriter output)
    {
        var terminal = ReferenceEquals(output, System.Console.Out) && !System.Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        if (!terminal) console.Profile.Width = 200;
        return console;
    }

    private static Text Num(JsonElement e) => new(e.ValueKind == JsonValueKind.Number ? e.GetInt64().ToString(CultureInfo.InvariantCulture) : "-");

    private static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.ValueKind switch
    {
        JsonValueKind.String => v.GetString(),
        JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => v.GetRawText(),
        _ => null,
    } : null;

    /// <summary>A reply-driven throttle: <c>throttled by rule gmail-rate-limited (421 4.7.28 …): 2 connections, held until …</c>.</summary>
    private static string Throttled(JsonElement t)
    {
        var limits = new[]
        {
            Str(t, "connections") is { } c ? c switch { "0" => "suspended", "1" => "1 connection", _ => $"{c} connections" } : null,
            Str(t, "rate") is { } r ? $"{r} messages/min" : null,
        }.Where(x => x is not null);
        var phase = t.TryGetProperty("ramping", out var ramping) && ramping.ValueKind == JsonValueKind.True ? "ramping back" : $"held until {When(t, "hold_until")}";
        return $"throttled by rule {Str(t, "rule")} ({Str(t, "reply")}): {string.Join(", ", limits)}, {phase}";
    }

    /// <summary>A timestamp of the API as "yyyy-MM-dd HH:mm:ssZ" (UTC); null when absent.</summary>
    private static string? When(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.TryGetDateTimeOffset(out var t)
            ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)
            : null;

    private static string Count(JsonElement e, string noun) => Count(e.GetInt64(), noun);

    private static string Count(long n, string noun) => $"{n.ToString(CultureInfo.InvariantCulture)} {noun}{(n == 1 ? "" : "s")}";

    private static string Age(long seconds) => seconds switch
    {
        < 0 => "0s",
        < 120 => $"{seconds}s",
        < 2 * 3600 => $"{seconds / 60}m",
        < 2 * 86400 => $"{seconds / 3600}h{seconds % 3600 / 60:00}m",
        _ => $"{seconds / 86400}d{seconds % 86400 / 3600}h",
    };
}
