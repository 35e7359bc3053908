using System.Buffers;
using System.Net.Sockets;
using MimeKit;
using MimeKit.IO;

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
    /// start each time (MailKit may ask twice). With <paramref name="dotStuff"/> the bytes are also dot-stuffed (RFC 5321
    /// §4.5.2) in the same pass, for a destination that writes them to the wire as they are. Output is gathered in the
    /// repair buffer and written when the next chunk might not fit (≈ 32 KB writes for a large body).</summary>
    internal Task WriteAsync(Stream destination, bool dotStuff, CancellationToken ct) => Copy(destination, dotStuff, useAsync: true, ct);

    /// <summary>The same for MailKit's synchronous API: no await inside suspends, so the task is complete on return.</summary>
    internal void Write(Stream destination, bool dotStuff, CancellationToken ct) =>
        Copy(destination, dotStuff, useAsync: false, ct).GetAwaiter().GetResult();

    private async Task Copy(Stream destination, bool dotStuff, bool useAsync, CancellationToken ct)
    {
        var chunk = ChunkFor(_stream.Length);
        var input = ArrayPool<byte>.Shared.Rent(chunk);
        var output = ArrayPool<byte>.Shared.Rent(CrlfNormalizer.MaxOutput(chunk));
        try
        {
            _stream.Position = 0;
            var crlf = new CrlfNormalizer(dotStuff);
            int n, used = 0;
            // Synchronous positional reads: the spool's segment file was just written, so a read is a copy from the page
            // cache; .NET on Linux runs each asynchronous file read as a thread-pool work item (a hand-off per 16 KB).
            while ((n = _stream.Read(input, 0, chunk)) > 0)
            {
                ct.ThrowIfCancellationRequested();
                used += crlf.Transform(input.AsSpan(0, n), output.AsSpan(used));
                if (output.Length - used < CrlfNormalizer.MaxOutput(chunk))
                {
                    await Send(used).ConfigureAwait(false);
                    used = 0;
                }
            }
            used += crlf.Finish(output.AsSpan(used)); // room: at least MaxOutput(chunk) ≥ 4 bytes are free here
            if (used > 0) await Send(used).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
            ArrayPool<byte>.Shared.Return(input);
        }

        ValueTask Send(int count)
        {
            if (useAsync) return destination.WriteAsync(output.AsMemory(0, count), ct);
            destination.Write(output, 0, count);
            return ValueTask.CompletedTask;
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
/// Optionally dot-stuffs in the same pass (RFC 5321 §4.5.2: a line that starts with "." gets one more), so the DATA
/// phase needs no second scan of the body. Works on chunks: a CR at the end of one chunk is decided by the first byte
/// of the next.
/// </summary>
public struct CrlfNormalizer(bool dotStuff)
{
    private const byte Cr = (byte)'\r', Lf = (byte)'\n', Dot = (byte)'.';
    private readonly bool _dotStuff = dotStuff;
    private bool _pendingCr;
    private bool _midLine;

    public CrlfNormalizer() : this(false) { }

    /// <summary>Output space <see cref="Transform"/> and <see cref="Finish"/> may need for <paramref name="input"/> bytes
    /// (each input byte gives at most two — a bare LF its CRLF, a line-leading dot its stuffing — plus a pending CR's CRLF).</summary>
    public static int MaxOutput(int input) => 2 * input + 2;

    /// <summary>Writes the repaired bytes of <paramref name="input"/> to <paramref name="output"/> (at least
    /// <see cref="MaxOutput"/> long) and returns how many.</summary>
    public int Transform(ReadOnlySpan<byte> input, Span<byte> output)
    {
        if (input.IsEmpty) return 0;
        int i = 0, o = 0;
        bool lineStart = !_midLine;
        if (_pendingCr)
        {
            output[o++] = Cr;
            output[o++] = Lf;
            lineStart = true;
            _pendingCr = false;
            if (input[0] == Lf) i = 1;
        }
        while (i < input.Length)
        {
            var rest = input[i..];
            var k = rest.IndexOfAny(Cr, Lf);
            var text = k < 0 ? rest : rest[..k];
            if (!text.IsEmpty)
            {
                if (lineStart && _dotStuff && text[0] == Dot) output[o++] = Dot;
                text.CopyTo(output[o..]);
                o += text.Length;
                lineStart = false;
            }
            if (k < 0) break;
            i += k;
            if (input[i] == Cr && i + 1 == input.Length)
            {
                _pendingCr = true; // CRLF split across chunks, or a bare CR: the next chunk says which
                i++;
                break;
            }
            output[o++] = Cr;
            output[o++] = Lf;
            lineStart = true;
            i += input[i] == Cr && input[i + 1] == Lf ? 2 : 1;
        }
        _midLine = !lineStart;
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
    private Socket? _plainSocket;

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
    /// <param name="plainSocket">The connection's socket when it is not TLS: the DATA body is then sent on it directly.</param>
    public static MimeMessage Wrap(OutboundBody body, bool eightBit, Socket? plainSocket = null)
    {
        var shell = new ExperimentalMimeParser(Parsing, new MemoryStream(eightBit ? EightBitShell : SevenBitShell, writable: false))
            .ParseMessage();
        var part = (SpooledMessagePart)shell.Body!;
        part._body = body;
        part._plainSocket = plainSocket;
        return shell;
    }

    private OutboundBody Body => _body ?? throw new InvalidOperationException("no spooled body attached");

    public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
    {
        if (DataPhaseWire(stream) is { } wire) Body.Write(wire, dotStuff: true, cancellationToken);
        else Body.Write(stream, dotStuff: false, cancellationToken);
    }

    public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
    {
        if (DataPhaseWire(stream) is not { } wire)
        {
            await Body.WriteAsync(stream, dotStuff: false, cancellationToken).ConfigureAwait(false);
            return;
        }
        if (_plainSocket is not { } socket)
        {
            await Body.WriteAsync(wire, dotStuff: true, cancellationToken).ConfigureAwait(false);
            return;
        }
        // MailKit's SmtpStream sends in 4 KB blocks (26 sends per 100 KB message, each waking the receiver too). On a
        // plaintext connection nothing sits between it and the socket, so once its buffer is out (empty after the 354
        // it read) the stuffed body goes to the socket in the repair buffer's ≈ 32 KB writes, in order; MailKit then
        // writes ".\r\n" the same way as before.
        await wire.FlushAsync(cancellationToken).ConfigureAwait(false);
        using var direct = new NetworkStream(socket, ownsSocket: false);
        await Body.WriteAsync(direct, dotStuff: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// MailKit's DATA phase (4.x <c>MessageDataAsync</c>; no progress reporting is used here) hands the message a
    /// <see cref="FilteredStream"/> whose one filter, <c>SmtpDataFilter</c>, dot-stuffs byte by byte on its way into
    /// MailKit's <c>SmtpStream</c> — 6.6 % of the gateway's CPU samples on 100 KB messages. The body is written past
    /// it, already stuffed by <see cref="CrlfNormalizer"/> (RFC 5321 §4.5.2), and ends in CRLF so MailKit's ".\r\n"
    /// completes &lt;CRLF&gt;.&lt;CRLF&gt;. Any other stream (BDAT, a measuring pass) gets the unstuffed bytes.
    /// <c>OutboundBodyTests</c> pin the wire format, so a MailKit that changed this shape fails them.
    /// </summary>
    private static Stream? DataPhaseWire(Stream stream) =>
        stream is FilteredStream { Source: { } source } && source.GetType().FullName == "MailKit.Net.Smtp.SmtpStream" ? source : null;
}
