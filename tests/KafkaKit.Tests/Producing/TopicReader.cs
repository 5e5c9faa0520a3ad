using KafkaKit.Tests.Support;
using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Serialization;

namespace KafkaKit.Tests.Producing;

/// <summary>
/// Reads a whole topic from the earliest offset with a plain Confluent consumer (Assign, no group: no rebalance wait on
/// the embedded cluster), on its own thread, while producers write. Counts every record; keeps them when asked.
/// </summary>
internal sealed class TopicReader<TKey, TValue> : IAsyncDisposable
{
    private readonly IConsumer<TKey, TValue> _consumer;
    private readonly CancellationTokenSource _stop = new();
    private readonly bool[] _atEnd;
    private readonly ConcurrentQueue<ConsumeResult<TKey, TValue>>? _records;
    private readonly Task _loop;
    private long _count;
    private Exception? _error;

    public TopicReader(string bootstrapServers, string topic, int partitions, bool keepRecords = false)
    {
        Topic = topic;
        _atEnd = new bool[partitions];
        _records = keepRecords ? new ConcurrentQueue<ConsumeResult<TKey, TValue>>() : null;
        _consumer = new ConsumerBuilder<TKey, TValue>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = ProducerTestKit.NewName("reader"),
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = 50,
        })
            .SetKeyDeserializer(KafkaSerializers.DeserializerFor<TKey>())
            .SetValueDeserializer(KafkaSerializers.DeserializerFor<TValue>())
            .SetLogHandler((_, _) => { })
            .SetErrorHandler((_, _) => { })
            .Build();
        _consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        _loop = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    public string Topic { get; }

    /// <summary>Gets the number of records read so far.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>Gets the records read, in the order read (only when kept).</summary>
    public IReadOnlyCollection<ConsumeResult<TKey, TValue>> Records => _records ?? throw new InvalidOperationException("Records are not kept.");

    /// <summary>
    /// Waits until at least <paramref name="expected"/> records were read and every partition is at its end, then returns
    /// the count (so more records than expected are seen too).
    /// </summary>
    public async Task<long> ReadAsync(long expected, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await Wait.ForAsync(() => _error is not null || (Count >= expected && AtEnd()), timeout, () => $"Read {Count} of {expected} records from {Topic}.", cancellationToken);
        if (_error is not null)
        {
            throw new InvalidOperationException("The reader failed.", _error);
        }

        return Count;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _consumer.Close();
        _consumer.Dispose();
        _stop.Dispose();
    }

    private bool AtEnd()
    {
        lock (_atEnd)
        {
            return _atEnd.All(e => e);
        }
    }

    private void Loop()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var result = _consumer.Consume(TimeSpan.FromMilliseconds(100));
                if (result is null)
                {
                    continue;
                }

                lock (_atEnd)
                {
                    _atEnd[result.Partition.Value] = result.IsPartitionEOF;
                }

                if (result.IsPartitionEOF)
                {
                    continue;
                }

                _records?.Enqueue(result);
                Interlocked.Increment(ref _count);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Debug.WriteLine(e);
            _error = e;
        }
    }
}
