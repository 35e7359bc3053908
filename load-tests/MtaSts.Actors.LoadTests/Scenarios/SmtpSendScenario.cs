using System.Globalization;
using System.Net;
using MtaSts.Actors.LoadTests.Core;
using MtaSts.Actors.LoadTests.Smtp;

namespace MtaSts.Actors.LoadTests.Scenarios;

/// <summary>
/// The iteration every scenario shares: submit one message to the target over a reused SMTP session.
/// Steps: "connect" (TCP + banner + EHLO, only when a new session is opened) and "smtp_accept" (MAIL → final
/// 250, service time). The runner's "iteration" latency is the SMTP accept time as the client sees it:
/// from the scheduled time (open model) or from connect/MAIL (closed model) to the final 250.
/// </summary>
public static class SmtpSendScenario
{
    public const string StepConnect = "connect";
    public const string StepAccept = "smtp_accept";

    public static LoadScenario Create(string name, IPEndPoint target, RunOptions o, DeliveryLedger ledger, DestinationPlan plan, MessageFactory factory)
    {
        LoadSimulation simulation = o.Rate is { } rate ? new LoadSimulation.Inject(rate, o.Sessions) : new LoadSimulation.KeepConstant(o.Sessions);
        return new LoadScenario(name, async (ctx, ct) =>
        {
            var client = ctx.CopyState as SmtpLoadClient;
            if (client is null || client.Broken || client.MessagesSent >= o.ClientMessagesPerConnection)
            {
                if (client is not null) await client.DisposeAsync();
                ctx.CopyState = null;
                var t0 = Clock.NowUs();
                var (fresh, reply) = await SmtpLoadClient.ConnectAsync(target, "loadgen.test", ct);
                ctx.Step(StepConnect, Clock.NowUs() - t0, fresh is not null, Code(reply));
                if (fresh is null)
                {
                    await Task.Delay(50, ct); // refused or 421: don't spin on a target that is down
                    return Response.Fail(Code(reply));
                }
                ctx.CopyState = client = fresh;
            }
            var id = ctx.InvocationNumber;
            var rcpt = plan.RecipientFor(id);
            ledger.Submitted(id, ctx.ScheduledUs, ctx.Measuring);
            var sentUnix = Clock.ToUnixUs(ctx.ScheduledUs);
            var tm = Clock.NowUs();
            var final = await client.SendAsync(MessageFactory.Sender, rcpt, buf =>
            {
                var b = buf;
                var n = factory.Write(id, rcpt, sentUnix, ref b);
                return (n, b);
            }, ct);
            var ok = final.Code == 250;
            ctx.Step(StepAccept, Clock.NowUs() - tm, ok, Code(final));
            if (!ok) return Response.Fail(Code(final));
            ledger.Accepted(id, QueueKey.FromReply(final.Text));
            return Response.Success(factory.SizeBytes);
        }, simulation, o.WarmUp, new RunLimit(o.Duration, o.Messages))
        {
            CleanCopy = async ctx =>
            {
                if (ctx.CopyState is SmtpLoadClient c) await c.DisposeAsync();
                ctx.CopyState = null;
            },
        };
    }

    private static string Code(SmtpReply r) => r.Code == 0 ? (r.Text.StartsWith("connect", StringComparison.Ordinal) ? r.Text : "io/closed") : r.Code.ToString(CultureInfo.InvariantCulture);
}
