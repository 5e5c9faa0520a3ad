using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Testing;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Fire-and-forget produce of 100-byte values: raw <c>IProducer.Produce</c> with a cached counting delivery handler
/// against KafkaKit's <c>EnqueueAsync</c> without a per-message callback, same librdkafka properties. Each invocation
/// enqueues <see cref="Messages"/> messages and then flushes, so it measures delivered throughput, not queueing only.
/// </summary>
/// <remarks>
/// The embedded cluster keeps only the newest ~5 MB / 100,000 message sets of each partition. That cap prunes old data
/// (the low watermark rises); it never refuses a produce, so writing more than the cap over the run is harmless here:
/// every invocation checks that each message was delivered without error and fails the benchmark otherwise.
/// <see cref="Messages"/> stays below <c>queue.buffering.max.messages</c> (100,000), so neither side ever waits for room.
/// </remarks>
[MemoryDiagnoser]
public class FireAndForgetProduceBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 80_000;

    private const string Topic = "bench-fire-and-forget";
    private const int Partitions = 6;

    private readonly Message<Null, byte[]> _message = new() { Value = BenchmarkEnvironment.NewValue() };
    private readonly Action<DeliveryReport<Null, byte[]>> _countingHandler;
    private EmbeddedKafkaCluster? _cluster;
    private IProducer<Null, byte[]>? _raw;
    private IKafkaProducer<Null, byte[]>? _kafkaKit;
    private long _delivered;
    private long _failed;

    /// <summary>Initializes a new instance of the <see cref="FireAndForgetProduceBenchmarks"/> class.</summary>
    public FireAndForgetProduceBenchmarks()
    {
        // Cached once: the raw baseline allocates no delegate per message either.
        _countingHandler = report =>
        {
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref _failed);
            }

            Interlocked.Increment(ref _delivered);
        };
    }

    /// <summary>Starts the cluster and the raw producer and warms it up.</summary>
    [GlobalSetup(Target = nameof(ConfluentProduce))]
    public void SetupConfluent()
    {
        _cluster = StartCluster();
        _raw = BenchmarkEnvironment.RawProducer(_cluster);
        ConfluentProduce();
    }

    /// <summary>Starts the cluster and the KafkaKit producer and warms it up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitEnqueueAsync))]
    public async Task SetupKafkaKitAsync()
    {
        _cluster = StartCluster();
        _kafkaKit = BenchmarkEnvironment.KafkaKitProducer(_cluster, _ => Interlocked.Increment(ref _failed));
        await KafkaKitEnqueueAsync().ConfigureAwait(false);
    }

    /// <summary>Raw Confluent.Kafka: <c>Produce(topic, message, handler)</c> per message, then <c>Flush</c>.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public void ConfluentProduce()
    {
        var producer = _raw!;
        var expected = Volatile.Read(ref _delivered) + Messages;
        for (var i = 0; i < Messages; i++)
        {
            producer.Produce(Topic, _message, _countingHandler);
        }

        var left = producer.Flush(BenchmarkEnvironment.InvocationTimeout);
        WaitForDeliveryReports(expected);
        ThrowIfUndelivered(left);
    }

    /// <summary>KafkaKit: <c>EnqueueAsync(topic, message)</c> per message (no callback), then <c>FlushAsync</c>.</summary>
    /// <returns>A task that completes when every message is delivered.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task KafkaKitEnqueueAsync()
    {
        var producer = _kafkaKit!;
        for (var i = 0; i < Messages; i++)
        {
            await producer.EnqueueAsync(Topic, _message).ConfigureAwait(false);
        }

        using var timeout = new CancellationTokenSource(BenchmarkEnvironment.InvocationTimeout);
        ThrowIfUndelivered(await producer.FlushAsync(timeout.Token).ConfigureAwait(false));
    }

    /// <summary>Disposes the producers and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _raw?.Dispose();
        if (_kafkaKit is not null)
        {
            await _kafkaKit.DisposeAsync().ConfigureAwait(false);
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static EmbeddedKafkaCluster StartCluster()
    {
        var cluster = BenchmarkEnvironment.StartCluster();
        cluster.CreateTopic(Topic, Partitions);
        return cluster;
    }

    /// <summary>rd_kafka_flush returns once no message is outstanding; the last handler call may still be finishing.</summary>
    private void WaitForDeliveryReports(long expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        var spin = default(SpinWait);
        while (Volatile.Read(ref _delivered) < expected && DateTime.UtcNow < deadline)
        {
            spin.SpinOnce();
        }
    }

    private void ThrowIfUndelivered(int left)
    {
        var failed = Interlocked.Read(ref _failed);
        if (left > 0 || failed > 0)
        {
            throw new InvalidOperationException($"{left} messages undelivered after the flush, {failed} delivery failures so far.");
        }
    }
}
