using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaKit.Consuming;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Consume + handle from one partition with a no-op batch handler (<c>SetBatchHandler</c>, <c>Batch.MaxBatchSize</c>
/// 500) against the raw Confluent <c>Consume</c> + <c>StoreOffset</c> per-message loop, both with the same librdkafka
/// consumer properties; the same measurement as <see cref="ConsumeBenchmarks"/> (see <see cref="ConsumeFixture"/>).
/// </summary>
/// <remarks>
/// <c>Batch.MaxBatchWait</c> is 0: a batch started from an empty buffer is handed over with what is there. With a wait,
/// the last batch of each invocation (fewer than 500 messages) would wait for it, which measures the wait, not the engine.
/// </remarks>
[MemoryDiagnoser]
public class BatchConsumeBenchmarks
{
    private const int Partitions = 1;

    private ConsumeFixture? _fixture;

    /// <summary>Starts the cluster and the raw consumer (joined, warmed up).</summary>
    [GlobalSetup(Targets = [nameof(ConfluentConsumeStoreOffset), nameof(ConfluentConsumeOnly)])]
    public void SetupConfluent()
    {
        _fixture = new ConsumeFixture("bench-batch-1", Partitions, ConsumeBenchmarks.Messages);
        _fixture.StartRaw();
    }

    /// <summary>Starts the cluster and the KafkaKit batch consumer (joined, warmed up).</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitBatchConsumer))]
    public Task SetupKafkaKitAsync()
    {
        _fixture = new ConsumeFixture("bench-batch-1", Partitions, ConsumeBenchmarks.Messages);
        return _fixture.StartTypedAsync(options =>
        {
            options.Batch.MaxBatchSize = 500;
            options.Batch.MaxBatchWait = TimeSpan.Zero;
            return new KafkaConsumerBuilder<Ignore, byte[]>("kafkakit-bench-batch-consumer", options).SetBatchHandler(HandleAsync).Build();
        });
    }

    /// <summary>Queues the invocation's messages in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare() => _fixture!.Prepare();

    /// <summary>Raw Confluent.Kafka: release the batch, then <c>Consume</c> + <c>StoreOffset</c> until it is read.</summary>
    /// <returns>The number of messages handled.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = ConsumeBenchmarks.Messages)]
    public int ConfluentConsumeStoreOffset()
    {
        _fixture!.Release();
        return ConsumeFixture.ConsumeRaw(_fixture.Raw!, ConsumeBenchmarks.Messages);
    }

    /// <summary>
    /// Raw Confluent.Kafka, <c>Consume</c> alone (no offset store: not at-least-once): the floor of any consumer whose
    /// poll thread calls <c>Consume</c> per message, KafkaKit's included.
    /// </summary>
    /// <returns>The number of messages read.</returns>
    [Benchmark(OperationsPerInvoke = ConsumeBenchmarks.Messages)]
    public int ConfluentConsumeOnly()
    {
        _fixture!.Release();
        var deadline = DateTime.UtcNow + BenchmarkEnvironment.InvocationTimeout;
        var read = 0;
        while (read < ConsumeBenchmarks.Messages)
        {
            if (_fixture.Raw!.Consume(TimeSpan.FromMilliseconds(100)) is null)
            {
                ConsumeFixture.ThrowIfLate(deadline, read, ConsumeBenchmarks.Messages);
                continue;
            }

            read++;
        }

        return read;
    }

    /// <summary>KafkaKit with a batch handler: release the batch and wait until the handler has seen all of it.</summary>
    /// <returns>A task that completes when the last message was handled.</returns>
    [Benchmark(OperationsPerInvoke = ConsumeBenchmarks.Messages)]
    public Task KafkaKitBatchConsumer() => _fixture!.RunKafkaKitAsync();

    /// <summary>Stops the consumers and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_fixture is not null)
        {
            await _fixture.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The no-op batch handler: count the batch and complete synchronously.</summary>
    private ValueTask HandleAsync(IReadOnlyList<ConsumeResult<Ignore, byte[]>> batch, CancellationToken cancellationToken)
    {
        _fixture!.Count(batch.Count);
        return default;
    }
}
