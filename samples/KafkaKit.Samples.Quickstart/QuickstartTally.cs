using System.Collections.Concurrent;
using KafkaKit.Consuming;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaKit.Samples.Quickstart;

/// <summary>The topic of this run.</summary>
internal sealed record QuickstartTopic(string Name);

/// <summary>What the consumers saw: each message id once, offsets increasing per partition, sequence increasing per key.</summary>
internal sealed class QuickstartTally(int expected)
{
    private readonly int[] _seen = new int[expected];
    private readonly ConcurrentDictionary<int, long> _lastOffset = new();
    private readonly ConcurrentDictionary<string, int> _lastSequence = new();
    private int _distinct;
    private int _duplicates;
    private int _outOfOrder;

    public int Expected => expected;

    public int Distinct => Volatile.Read(ref _distinct);

    public int Duplicates => Volatile.Read(ref _duplicates);

    public int OutOfOrder => Volatile.Read(ref _outOfOrder);

    public TaskCompletionSource AllArrived { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int ExitCode { get; set; } = 1;

    /// <summary>Gets the number of partitions each group member owns.</summary>
    public ConcurrentDictionary<string, int> Owned { get; } = new();

    /// <summary>Keeps <see cref="Owned"/> current through a consumer's rebalance callbacks.</summary>
    public static void Track(IServiceProvider services, KafkaConsumerBuilder<string, string> consumer, string member)
    {
        var tally = services.GetRequiredService<QuickstartTally>();
        consumer
            .SetPartitionsAssignedHandler(partitions =>
            {
                tally.Owned.AddOrUpdate(member, partitions.Count, (_, n) => n + partitions.Count);
                return null;
            })
            .SetPartitionsRevokedHandler(partitions => tally.Owned.AddOrUpdate(member, 0, (_, n) => n - partitions.Count))
            .SetPartitionsLostHandler(partitions => tally.Owned.AddOrUpdate(member, 0, (_, n) => n - partitions.Count));
    }

    /// <summary>Records one handled message. Messages of one partition are handled one at a time, so per-partition and per-key state needs no lock.</summary>
    public void Record(int partition, long offset, string key, int id, int sequence)
    {
        if (offset <= _lastOffset.GetValueOrDefault(partition, -1) || sequence <= _lastSequence.GetValueOrDefault(key, -1))
        {
            Interlocked.Increment(ref _outOfOrder);
        }

        _lastOffset[partition] = offset;
        _lastSequence[key] = sequence;
        if (id < 0 || id >= _seen.Length)
        {
            return;
        }

        if (Interlocked.Increment(ref _seen[id]) > 1)
        {
            Interlocked.Increment(ref _duplicates);
        }
        else if (Interlocked.Increment(ref _distinct) == _seen.Length)
        {
            AllArrived.TrySetResult();
        }
    }
}
