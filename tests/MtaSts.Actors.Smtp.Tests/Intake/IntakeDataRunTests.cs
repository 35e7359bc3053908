using System.Text;
using MtaSts.Actors.Smtp.Intake;

namespace MtaSts.Actors.Smtp.Tests.Intake;

/// <summary>DATA takes buffered clean lines as runs written at once: whatever the client's write boundaries (mid-line,
/// between CR and LF, one line per write, everything at once), the stored body is exactly the unstuffed, normalised
/// message.</summary>
public sealed class IntakeDataRunTests
{
    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(3, true)]
    [InlineData(4, true)]
    public async Task Body_is_byte_exact_whatever_the_write_boundaries(int seed, bool bareLf)
    {
        var random = new Random(seed);
        var wire = new StringBuilder();
        var expected = new StringBuilder();
        for (int i = 0; i < 3000; i++)
        {
            var text = new string((char)('a' + i % 26), random.Next(0, 120));
            switch (random.Next(8))
            {
                case 0: wire.Append("..").Append(text).Append("\r\n"); expected.Append('.').Append(text).Append("\r\n"); break; // §4.5.2
                case 1: wire.Append("\r\n"); expected.Append("\r\n"); break;
                case 2 when bareLf: wire.Append('x').Append(text).Append('\n'); expected.Append('x').Append(text).Append("\r\n"); break;
                default: wire.Append(text).Append("\r\n"); expected.Append(text).Append("\r\n"); break;
            }
        }
        wire.Append(".\r\n");
        await using var h = await new IntakeHarness(o => o with
        {
            AddReceivedHeader = false,
            BareLineEndings = bareLf ? BareLineEndingPolicy.Normalize : BareLineEndingPolicy.Reject,
        }).StartAsync();
        await using var c = await h.OpenDataAsync();
        var all = wire.ToString();
        for (int at = 0; at < all.Length;)
        {
            int n = random.Next(4) switch { 0 => 1, 1 => random.Next(1, 64), 2 => random.Next(64, 20000), _ => all.Length };
            n = Math.Min(n, all.Length - at);
            await c.SendAsync(all.Substring(at, n));
            at += n;
        }
        var done = await c.ReadReplyAsync();
        Assert.Equal(250, done.Code);
        var m = await h.NextHandedOffAsync();
        Assert.Equal(expected.ToString(), await h.BodyTextAsync(m.Mid));
    }
}
