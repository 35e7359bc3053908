using BenchmarkDotNet.Attributes;
using MtaSts.Actors.Engine.Destination;

namespace MtaSts.Actors.MicroBench;

/// <summary>
/// Memory of a destination's queue state (<see cref="DestinationQueue"/>, what a destination actor holds besides its
/// Akka shell): an empty queue (an idle destination), and 1,000 queued single-recipient messages — the allocated bytes
/// divided by 1,000 is the cost per queued recipient, including its <see cref="MessageRef"/>, recipient array and address string, which
/// the dispatcher shares with the pending index. Allocated, not live: a queue keeps all of it except array growth.
/// </summary>
[MemoryDiagnoser]
public class DestinationQueueMemoryBench
{
    private const int Messages = 1000;
    private MessageRef[] _refs = null!;
    private RecipientRef[][] _rcpts = null!;
    private DateTimeOffset _now;

    [GlobalSetup]
    public void Setup()
    {
        _now = DateTimeOffset.UtcNow;
        _refs = new MessageRef[Messages];
        _rcpts = new RecipientRef[Messages][];
    }

    [Benchmark(Description = "empty DestinationQueue (idle destination)")]
    public DestinationQueue Empty() => new();

    [Benchmark(OperationsPerInvoke = Messages, Description = "per queued recipient (1,000 × 1-recipient messages)")]
    public DestinationQueue Enqueue()
    {
        var q = new DestinationQueue();
        for (int i = 0; i < Messages; i++)
        {
            // What the dispatcher builds per (message, destination); the queue then holds it.
            _refs[i] = new MessageRef(i + 1, "sender@load.test", _now, 2048);
            _rcpts[i] = [new RecipientRef(0, $"user{i}@d00001.test")];
            q.Enqueue(_refs[i], _rcpts[i], _now);
        }
        return q;
    }
}
