using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Testing;
using Polly;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Awaited produce with many concurrent awaits: <see cref="Concurrency"/> asynchronous workers each await
/// <c>ProduceAsync</c> in a loop until <see cref="Messages"/> messages are acknowledged, so about 1,000 produces are in
/// flight at any time. Raw Confluent <c>ProduceAsync</c> (a <c>Task</c> per message) against KafkaKit's
/// <c>ProduceAsync</c> (pooled <c>ValueTask</c> source, default retry pipeline), same librdkafka properties.
/// </summary>
/// <remarks>
/// Both sides run the identical worker shape; the 1,000 worker tasks per invocation are amortised over 20,000 messages.
/// <see cref="KafkaKitProduceAsyncNoRetry"/> is KafkaKit with <c>ResiliencePipeline.Empty</c> (retries off), which
/// separates the cost of the retry pipeline from that of the producer itself.
/// </remarks>
[MemoryDiagnoser]
public class AwaitedProduceBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 20_000;

    /// <summary>Produces in flight at once.</summary>
    public const int Concurrency = 1_000;

    private const string Topic = "bench-awaited";
    private const int Partitions = 6;
    private const int PerWorker = Messages / Concurrency;

    private readonly Message<Null, byte[]> _message = new() { Value = BenchmarkEnvironment.NewValue() };
    private readonly Task[] _workers = new Task[Concurrency];
    private EmbeddedKafkaCluster? _cluster;
    private IProducer<Null, byte[]>? _raw;
    private IKafkaProducer<Null, byte[]>? _kafkaKit;
    private IKafkaProducer<Null, byte[]>? _kafkaKitNoRetry;

    /// <summary>
    /// Gets or sets librdkafka's <c>linger.ms</c> for every variant, ms. At 5 ms (the shared setting) each await waits
    /// about one linger plus a round trip, so 1,000 awaits carry about 1,000 / (linger + round trip) messages per
    /// second on either side (latency-bound); at 0 ms batches go out as soon as a request slot is free and the run is
    /// bound by processor time per message, which is where the clients differ.
    /// </summary>
    [Params(5, 0)]
    public int LingerMs { get; set; }

    /// <summary>Starts the cluster and the raw producer and warms it up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(ConfluentProduceAsync))]
    public async Task SetupConfluentAsync()
    {
        _cluster = StartCluster();
        _raw = BenchmarkEnvironment.RawProducer(_cluster, Linger());
        await ConfluentProduceAsync().ConfigureAwait(false);
    }

    /// <summary>Starts the cluster and the KafkaKit producer and warms it up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitProduceAsync))]
    public async Task SetupKafkaKitAsync()
    {
        _cluster = StartCluster();
        _kafkaKit = BenchmarkEnvironment.KafkaKitProducer(_cluster, static _ => { }, Linger());
        await KafkaKitProduceAsync().ConfigureAwait(false);
    }

    /// <summary>Starts the cluster and a KafkaKit producer without retry pipeline and warms it up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitProduceAsyncNoRetry))]
    public async Task SetupKafkaKitNoRetryAsync()
    {
        _cluster = StartCluster();
        var options = new KafkaProducerOptions { BootstrapServers = _cluster.BootstrapServers };
        foreach (var (key, value) in BenchmarkEnvironment.ProducerProperties.Append(Linger()))
        {
            options.Config[key] = value;
        }

        _kafkaKitNoRetry = new KafkaProducerBuilder<Null, byte[]>("kafkakit-bench-producer", options)
            .SetResiliencePipeline(ResiliencePipeline.Empty)
            .Build();
        await KafkaKitProduceAsyncNoRetry().ConfigureAwait(false);
    }

    /// <summary>Raw Confluent.Kafka: 1,000 concurrent awaited <c>ProduceAsync</c> loops.</summary>
    /// <returns>A task that completes when every message is acknowledged.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task ConfluentProduceAsync()
    {
        for (var i = 0; i < _workers.Length; i++)
        {
            _workers[i] = ConfluentWorkerAsync();
        }

        return Task.WhenAll(_workers).WaitAsync(BenchmarkEnvironment.InvocationTimeout);
    }

    /// <summary>KafkaKit: 1,000 concurrent awaited <c>ProduceAsync</c> loops.</summary>
    /// <returns>A task that completes when every message is acknowledged.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitProduceAsync()
    {
        for (var i = 0; i < _workers.Length; i++)
        {
            _workers[i] = KafkaKitWorkerAsync(_kafkaKit!);
        }

        return Task.WhenAll(_workers).WaitAsync(BenchmarkEnvironment.InvocationTimeout);
    }

    /// <summary>KafkaKit without retry pipeline: 1,000 concurrent awaited <c>ProduceAsync</c> loops.</summary>
    /// <returns>A task that completes when every message is acknowledged.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitProduceAsyncNoRetry()
    {
        for (var i = 0; i < _workers.Length; i++)
        {
            _workers[i] = KafkaKitWorkerAsync(_kafkaKitNoRetry!);
        }

        return Task.WhenAll(_workers).WaitAsync(BenchmarkEnvironment.InvocationTimeout);
    }

    /// <summary>Disposes the producers and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _raw?.Dispose();
        foreach (var producer in new[] { _kafkaKit, _kafkaKitNoRetry })
        {
            if (producer is not null)
            {
                await producer.DisposeAsync().ConfigureAwait(false);
            }
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
        }
    }

    private KeyValuePair<string, string> Linger() => new("linger.ms", LingerMs.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static EmbeddedKafkaCluster StartCluster()
    {
        var cluster = BenchmarkEnvironment.StartCluster();
        cluster.CreateTopic(Topic, Partitions);
        return cluster;
    }

    private async Task ConfluentWorkerAsync()
    {
        var producer = _raw!;
        for (var i = 0; i < PerWorker; i++)
        {
            await producer.ProduceAsync(Topic, _message).ConfigureAwait(false);
        }
    }

    private async Task KafkaKitWorkerAsync(IKafkaProducer<Null, byte[]> producer)
    {
        for (var i = 0; i < PerWorker; i++)
        {
            await producer.ProduceAsync(Topic, _message).ConfigureAwait(false);
        }
    }
}
