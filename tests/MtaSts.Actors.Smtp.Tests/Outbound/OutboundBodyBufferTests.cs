using System.Buffers;
using MtaSts.Actors.Smtp.Outbound;

namespace MtaSts.Actors.Smtp.Tests.Outbound;

/// <summary>The buffers a delivery rents to write a body: sized to the body, and never large-object arrays (a backlog
/// drain runs up to 2,000 deliveries at once; a pool miss on an 85,000-byte-or-larger array is LOH garbage).</summary>
public sealed class OutboundBodyBufferTests
{
    private const int LargeObjectThreshold = 85_000;

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 1)]
    [InlineData(2_048, 2_048)]
    [InlineData(OutboundBody.ChunkSize, OutboundBody.ChunkSize)]
    [InlineData(100_000, OutboundBody.ChunkSize)]
    [InlineData(50_000_000_000, OutboundBody.ChunkSize)]
    public void The_read_chunk_is_no_larger_than_the_body(long length, int chunk)
    {
        Assert.Equal(chunk, OutboundBody.ChunkFor(length));
    }

    [Fact]
    public void The_pooled_repair_buffer_of_the_largest_chunk_is_not_a_large_object()
    {
        var output = ArrayPool<byte>.Shared.Rent(CrlfNormalizer.MaxOutput(OutboundBody.ChunkSize));
        try
        {
            Assert.True(output.Length < LargeObjectThreshold, $"{output.Length} bytes");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
        }
    }
}
