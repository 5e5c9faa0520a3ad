using BenchmarkDotNet.Attributes;
using Confluent.Kafka;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Consume + handle from one partition with a no-op handler: a raw Confluent <c>Consume</c> + <c>StoreOffset</c> loop
/// against KafkaKit's consumer engine (poll thread, partition buffer, handler on the thread pool, offset store), both
/// with the same librdkafka consumer properties. Each invocation measures the time for a joined, idle consumer to handle
/// <see cref="Messages"/> messages that reach the cluster when it starts; see <see cref="ConsumeFixture"/>.
/// </summary>
[MemoryDiagnoser]
public class ConsumeBenchmarks
{
    /// <summary>
    /// Messages per invocation: about 2.2 MB in one batch. The partition then holds this batch and the previous one
    /// (4.4 MB); 25,000 (2 x 2.75 MB) already crossed the embedded cluster's ~5 MB cap, which then dropped the unread
    /// batch too (low watermark = high watermark), so do not raise this.
    /// </summary>
    public const int Messages = 20_000;

    private const int Partitions = 1;

    private ConsumeFixture? _fixture;

    /// <summary>Starts the cluster and the raw consumer (joined, warmed up).</summary>
    [GlobalSetup(Target = nameof(ConfluentConsumeStoreOffset))]
    public void SetupConfluent()
    {
        _fixture = new ConsumeFixture("bench-consume-1", Partitions, Messages);
        _fixture.StartRaw();
    }

    /// <summary>Starts the cluster and the KafkaKit consumer (joined, warmed up).</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitConsumer))]
    public Task SetupKafkaKitAsync()
    {
        _fixture = new ConsumeFixture("bench-consume-1", Partitions, Messages);
        return _fixture.StartKafkaKitAsync(HandleAsync);
    }

    /// <summary>Queues the invocation's messages in the holding feeder.</summary>
    [IterationSetup]
    public void Prepare() => _fixture!.Prepare();

    /// <summary>Raw Confluent.Kafka: release the batch, then <c>Consume</c> + <c>StoreOffset</c> until it is read.</summary>
    /// <returns>The number of messages handled.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public int ConfluentConsumeStoreOffset()
    {
        _fixture!.Release();
        return ConsumeFixture.ConsumeRaw(_fixture.Raw!, Messages);
    }

    /// <summary>KafkaKit: release the batch and wait until the handler has seen all of it.</summary>
    /// <returns>A task that completes when the last message was handled.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitConsumer() => _fixture!.RunKafkaKitAsync();

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

    /// <summary>The no-op handler: count and complete synchronously.</summary>
    private ValueTask HandleAsync(ConsumeResult<Ignore, byte[]> result, CancellationToken cancellationToken)
    {
        _fixture!.Count();
        return default;
    }
}
