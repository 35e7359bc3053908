using System.Buffers;
using MimeKit;

namespace MtaSts.Actors.Smtp.Outbound;

/// <summary>
/// RFC 6152 §3: a message received with BODY=8BITMIME may be relayed to a server that does not offer 8BITMIME only
/// after conversion to 7-bit MIME (RFC 2045), or it must be returned as undeliverable. A body declared 8-bit that holds
/// no byte ≥ 0x80 goes as it is, without the parameter. Otherwise MimeKit re-encodes every 8-bit part as
/// quoted-printable or base64 (<see cref="MimeMessage.Prepare"/>); raw 8-bit bytes in a header cannot be made 7-bit
/// without rewriting the header (RFC 2047), which would change what the sender signed: such a message is returned
/// (5.6.3, RFC 3463 "conversion required but not supported"). Conversion holds the message in memory; it is the rare
/// path (every common MX offers 8BITMIME).
/// </summary>
public static class EightBitDowngrade
{
    public enum Outcome { AlreadySevenBit, Converted, NotConvertible }

    /// <returns>The outcome; <paramref name="converted"/> (owned by the caller) for <see cref="Outcome.Converted"/>.</returns>
    public static async Task<(Outcome Outcome, OutboundBody? Converted, string? Reason)> PrepareAsync(OutboundBody body, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(body);
        var (any, inHeader) = await ScanAsync(body.Source, ct).ConfigureAwait(false);
        if (!any) return (Outcome.AlreadySevenBit, null, null);
        if (inHeader) return (Outcome.NotConvertible, null, "8-bit bytes in the message header");
        MemoryStream output;
        try
        {
            body.Source.Position = 0;
            using var message = await MimeMessage.LoadAsync(body.Source, ct).ConfigureAwait(false);
            message.Prepare(EncodingConstraint.SevenBit);
            output = new MemoryStream(checked((int)Math.Min(int.MaxValue, body.Length * 4 / 3 + 4096)));
            var format = FormatOptions.Default.Clone();
            format.NewLineFormat = NewLineFormat.Dos;
            await message.WriteToAsync(format, output, ct).ConfigureAwait(false);
        }
        catch (FormatException e)
        {
            return (Outcome.NotConvertible, null, $"the message cannot be parsed as MIME: {e.Message}");
        }
        finally
        {
            body.Source.Position = 0;
        }
        output.Position = 0;
        // A part MimeKit leaves 8-bit (e.g. raw 8-bit in an attached message's header) means no 7-bit form exists.
        if ((await ScanAsync(output, ct).ConfigureAwait(false)).Any)
        {
            await output.DisposeAsync().ConfigureAwait(false);
            return (Outcome.NotConvertible, null, "8-bit bytes in a header of an enclosed part");
        }
        output.Position = 0;
        return (Outcome.Converted, OutboundBody.FromStream(output), null);
    }

    /// <summary>Any byte ≥ 0x80, and whether one is in the header section (before the first empty line).</summary>
    internal static async Task<(bool Any, bool InHeader)> ScanAsync(Stream stream, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(32 * 1024);
        try
        {
            stream.Position = 0;
            bool inHeader = true, lineEmpty = true;
            int n;
            while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                int i = 0;
                for (; inHeader && i < n; i++)
                {
                    byte b = buffer[i];
                    if (b >= 0x80) return (true, true);
                    if (b == (byte)'\n') { if (lineEmpty) inHeader = false; lineEmpty = true; }
                    else if (b != (byte)'\r') lineEmpty = false;
                }
                if (buffer.AsSpan(i, n - i).IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0) return (true, false);
            }
            return (false, false);
        }
        finally
        {
            stream.Position = 0;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
