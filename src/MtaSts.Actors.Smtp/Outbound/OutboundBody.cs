using System.Buffers;
using MimeKit;

namespace MtaSts.Actors.Smtp.Outbound;

/// <summary>
/// The body of an <see cref="OutboundMessage"/> as spooled (not dot-stuffed): bytes in memory, or a seekable stream over
/// the spool that is read in pooled chunks while the body goes out, so a delivery never holds the whole body.
/// </summary>
public sealed class OutboundBody : IDisposable
{
    private readonly Stream _stream;

    private OutboundBody(Stream stream) => _stream = stream;

    /// <summary>Bytes on the wire before line-ending repair and dot-stuffing (the RFC 1870 SIZE estimate).</summary>
    public long Length => _stream.Length;

    /// <summary>The spooled bytes, for a reader that puts the position back to 0 (<see cref="EightBitDowngrade"/>).</summary>
    internal Stream Source => _stream;

    /// <summary>Takes ownership of <paramref name="stream"/> (readable, seekable, known length).</summary>
    public static OutboundBody FromStream(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead || !stream.CanSeek) throw new ArgumentException("the body stream must be readable and seekable", nameof(stream));
        return new OutboundBody(stream);
    }

    public static implicit operator OutboundBody(byte[] bytes) => new(new MemoryStream(bytes, writable: false));

    public static implicit operator OutboundBody(ReadOnlyMemory<byte> bytes) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(bytes, out var a)
            ? new(new MemoryStream(a.Array!, a.Offset, a.Count, writable: false))
            : new(new MemoryStream(bytes.ToArray(), writable: false));

    /// <summary>Writes the body with CRLF line endings only (<see cref="CrlfNormalizer"/>) and a final CRLF, from the
    /// start each time (MailKit may ask twice). Dot-stuffing is the DATA filter's job (RFC 5321 §4.5.2).</summary>
    internal async Task WriteAsync(Stream destination, CancellationToken ct)
    {
        var chunk = ChunkFor(_stream.Length);
        var input = ArrayPool<byte>.Shared.Rent(chunk);
        var output = ArrayPool<byte>.Shared.Rent(CrlfNormalizer.MaxOutput(chunk));
        try
        {
            _stream.Position = 0;
            var crlf = new CrlfNormalizer();
            int n;
            while ((n = await _stream.ReadAsync(input.AsMemory(0, chunk), ct).ConfigureAwait(false)) > 0)
            {
                var o = crlf.Transform(input.AsSpan(0, n), output);
                if (o > 0) await destination.WriteAsync(output.AsMemory(0, o), ct).ConfigureAwait(false);
            }
            var tail = crlf.Finish(output);
            if (tail > 0) await destination.WriteAsync(output.AsMemory(0, tail), ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
            ArrayPool<byte>.Shared.Return(input);
        }
    }

    internal void Write(Stream destination, CancellationToken ct)
    {
        var chunk = ChunkFor(_stream.Length);
        var input = ArrayPool<byte>.Shared.Rent(chunk);
        var output = ArrayPool<byte>.Shared.Rent(CrlfNormalizer.MaxOutput(chunk));
        try
        {
            _stream.Position = 0;
            var crlf = new CrlfNormalizer();
            int n;
            while ((n = _stream.Read(input, 0, chunk)) > 0)
            {
                ct.ThrowIfCancellationRequested();
                destination.Write(output, 0, crlf.Transform(input.AsSpan(0, n), output));
            }
            destination.Write(output, 0, crlf.Finish(output));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
            ArrayPool<byte>.Shared.Return(input);
        }
    }

    /// <summary>Largest read chunk: its repair buffer (<see cref="CrlfNormalizer.MaxOutput"/>, rounded up to a power of
    /// two by the pool) stays at 64 KB, under the 85,000-byte large-object threshold. With 32 KB chunks every delivery
    /// rented a 128 KB repair buffer; 2,000 concurrent deliveries outran the shared pool, and each miss was a new
    /// large-object array (≈ 30 KB allocated per 2 KB message in a backlog drain, the drain's RSS peak).</summary>
    public const int ChunkSize = 16 * 1024;

    /// <summary>The read chunk for a body of <paramref name="length"/> bytes: no larger than the body (a 2 KB message
    /// rents 2 KB + 8 KB, not 16 KB + 64 KB).</summary>
    public static int ChunkFor(long length) => (int)Math.Clamp(length, 1, ChunkSize);

    public void Dispose() => _stream.Dispose();
}

/// <summary>
/// Line endings for the wire (RFC 5321 §2.3.8: CRLF only): CRLF stays, a bare CR or a bare LF becomes CRLF, so no next
/// hop, however lenient, can find a line — or an end of data — the gateway did not send (SMTP smuggling). The intake
/// already stores CRLF-only bodies; this holds for anything else in the spool (generated DSNs, older spools) too.
/// Works on chunks: a CR at the end of one chunk is decided by the first byte of the next.
/// </summary>
public struct CrlfNormalizer
{
    private const byte Cr = (byte)'\r', Lf = (byte)'\n';
    private bool _pendingCr;
    private bool _midLine;

    /// <summary>Output space <see cref="Transform"/> and <see cref="Finish"/> may need for <paramref name="input"/> bytes.</summary>
    public static int MaxOutput(int input) => 2 * input + 2;

    /// <summary>Writes the repaired bytes of <paramref name="input"/> to <paramref name="output"/> (at least
    /// <see cref="MaxOutput"/> long) and returns how many.</summary>
    public int Transform(ReadOnlySpan<byte> input, Span<byte> output)
    {
        if (input.IsEmpty) return 0;
        int i = 0, o = 0;
        if (_pendingCr)
        {
            output[o++] = Cr;
            output[o++] = Lf;
            _pendingCr = false;
            if (input[0] == Lf) i = 1;
        }
        while (i < input.Length)
        {
            var rest = input[i..];
            var k = rest.IndexOfAny(Cr, Lf);
            if (k < 0)
            {
                rest.CopyTo(output[o..]);
                o += rest.Length;
                break;
            }
            rest[..k].CopyTo(output[o..]);
            o += k;
            i += k;
            if (input[i] == Cr && i + 1 == input.Length)
            {
                _pendingCr = true; // CRLF split across chunks, or a bare CR: the next chunk says which
                i++;
                break;
            }
            output[o++] = Cr;
            output[o++] = Lf;
            i += input[i] == Cr && input[i + 1] == Lf ? 2 : 1;
        }
        if (o > 0) _midLine = output[o - 1] != Lf;
        return o;
    }

    /// <summary>After the last chunk: a pending CR becomes CRLF and an unterminated last line gets its CRLF.</summary>
    public int Finish(Span<byte> output)
    {
        if (!_pendingCr && !_midLine) return 0;
        _pendingCr = _midLine = false;
        output[0] = Cr;
        output[1] = Lf;
        return 2;
    }
}

/// <summary>
/// The whole spooled message as the one part of the <see cref="MimeMessage"/> that MailKit's <c>SmtpClient</c> sends:
/// written byte for byte from <see cref="OutboundBody"/> (no MIME parse, no re-encoding: DKIM signatures stay valid).
/// Its own headers never reach the wire (<see cref="Format"/> hides them); Content-Transfer-Encoding: 8bit only tells
/// MailKit to send BODY=8BITMIME (RFC 6152) when the envelope says so and the server offers it.
/// </summary>
internal sealed class SpooledMessagePart : MimePart
{
    private const string MimeType = "application/x-mtasts-spooled";
    private static readonly ParserOptions Parsing = CreateParsing();
    private static readonly byte[] SevenBitShell = System.Text.Encoding.ASCII.GetBytes($"Content-Type: {MimeType}\r\n");
    private static readonly byte[] EightBitShell = System.Text.Encoding.ASCII.GetBytes($"Content-Type: {MimeType}\r\nContent-Transfer-Encoding: 8bit\r\n");
    private OutboundBody? _body;

    /// <summary>For the MIME parser (<see cref="ParserOptions.RegisterMimeType"/>).</summary>
    public SpooledMessagePart(MimeEntityConstructorArgs args) : base(args) { }

    /// <summary>The format to send with: MailKit's own choices plus this part's headers hidden.</summary>
    public static FormatOptions Format { get; } = CreateFormat();

    private static FormatOptions CreateFormat()
    {
        var f = FormatOptions.Default.Clone();
        f.HiddenHeaders.Add(HeaderId.ContentType);
        f.HiddenHeaders.Add(HeaderId.ContentTransferEncoding);
        return f;
    }

    private static ParserOptions CreateParsing()
    {
        var o = ParserOptions.Default.Clone();
        o.RegisterMimeType(MimeType, typeof(SpooledMessagePart));
        return o;
    }

    /// <summary>A message with no headers of its own and this part as its body. Parsed from a header block without a
    /// blank line because MimeKit writes a blank line before the body of any message it did not parse that way.</summary>
    public static MimeMessage Wrap(OutboundBody body, bool eightBit)
    {
        var shell = new ExperimentalMimeParser(Parsing, new MemoryStream(eightBit ? EightBitShell : SevenBitShell, writable: false))
            .ParseMessage();
        ((SpooledMessagePart)shell.Body!)._body = body;
        return shell;
    }

    private OutboundBody Body => _body ?? throw new InvalidOperationException("no spooled body attached");

    public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default) =>
        Body.Write(stream, cancellationToken);

    public override Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default) =>
        Body.WriteAsync(stream, cancellationToken);
}
