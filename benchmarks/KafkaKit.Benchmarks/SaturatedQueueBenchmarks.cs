using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using KafkaKit.Diagnostics;
using KafkaKit.Producing;
using KafkaKit.Testing;

namespace KafkaKit.Benchmarks;

/// <summary>
/// Backpressure under a saturated local queue: KafkaKit <c>EnqueueAsync</c> of <see cref="Messages"/> messages per
/// invocation with <c>queue.buffering.max.messages=10000</c> (a full queue makes the enqueue wait until it drained to
/// the 90 % low-water mark) against the same producer with librdkafka's default 100,000 (never full at this batch size).
/// </summary>
/// <remarks>
/// <para>
/// The contract under test: a full queue is met by an asynchronous wait, with no exception in the steady state. Any
/// exception reaching the caller fails the invocation; the Exceptions column counts first-chance exceptions too, so a
/// <c>Local_QueueFull</c> caught inside KafkaKit (its backstop) shows up there. The global cleanup prints how many
/// enqueues waited (KafkaKit's <c>kafkakit.producer.backpressure.wait</c> instrument).
/// </para>
/// <para>
/// The embedded broker answers in microseconds, so deliveries kept pace with enqueues and a 10,000 queue filled only a
/// few times per 100,000 messages. Both variants therefore run with a broker round-trip time of
/// <see cref="RoundTripMs"/> ms (a nearby real broker), which bounds the in-flight throughput and keeps the constrained
/// queue full for much of each invocation.
/// </para>
/// </remarks>
[MemoryDiagnoser]
public class SaturatedQueueBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 50_000;

    /// <summary>The constrained queue size (librdkafka <c>queue.buffering.max.messages</c>).</summary>
    public const int QueueLimit = 10_000;

    /// <summary>The broker round-trip time both variants run with, ms.</summary>
    public const int RoundTripMs = 10;

    private const string Topic = "bench-saturated";
    private const int Partitions = 6;

    private readonly Message<Null, byte[]> _message = new() { Value = BenchmarkEnvironment.NewValue() };
    private EmbeddedKafkaCluster? _cluster;
    private IKafkaProducer<Null, byte[]>? _producer;
    private MeterListener? _waits;
    private long _failed;
    private long _waitCount;
    private double _waitSeconds;
    private int _invocations;

    /// <summary>Starts the cluster and an unconstrained KafkaKit producer and warms it up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitUnconstrained))]
    public Task SetupUnconstrainedAsync()
    {
        _cluster = StartCluster();
        _producer = BenchmarkEnvironment.KafkaKitProducer(_cluster, _ => Interlocked.Increment(ref _failed));
        return KafkaKitUnconstrained();
    }

    /// <summary>Starts the cluster and a KafkaKit producer limited to 10,000 queued messages and warms it up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitQueueLimit10K))]
    public Task SetupConstrainedAsync()
    {
        _cluster = StartCluster();
        _producer = BenchmarkEnvironment.KafkaKitProducer(
            _cluster,
            _ => Interlocked.Increment(ref _failed),
            new KeyValuePair<string, string>("queue.buffering.max.messages", QueueLimit.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return KafkaKitQueueLimit10K();
    }

    /// <summary>KafkaKit <c>EnqueueAsync</c> with the default queue (100,000 messages): never waits.</summary>
    /// <returns>A task that completes when every message is delivered.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task KafkaKitUnconstrained() => EnqueueAndFlushAsync();

    /// <summary>KafkaKit <c>EnqueueAsync</c> with a 10,000-message queue: waits for room asynchronously.</summary>
    /// <returns>A task that completes when every message is delivered.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitQueueLimit10K() => EnqueueAndFlushAsync();

    /// <summary>Disposes the producer and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_waits is not null)
        {
            _waits.Dispose();
            Console.WriteLine(
                $"// Backpressure: {Interlocked.Read(ref _waitCount)} enqueues waited for room, {_waitSeconds:F3} s in total, over {_invocations} invocations of {Messages} messages.");
        }

        if (_producer is not null)
        {
            await _producer.DisposeAsync().ConfigureAwait(false);
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
        }
    }

    private EmbeddedKafkaCluster StartCluster()
    {
        var cluster = BenchmarkEnvironment.StartCluster();
        cluster.CreateTopic(Topic, Partitions);
        cluster.SetBrokerRoundTripTime(1, TimeSpan.FromMilliseconds(RoundTripMs));
        // Read before the listener starts: KafkaKitMetrics publishes its instruments from its static initializer, where
        // the field is still unset while its own instrument is being published.
        var backpressureWait = KafkaKitMetrics.BackpressureWait;
        _waits = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (ReferenceEquals(instrument, backpressureWait))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        _waits.SetMeasurementEventCallback<double>((_, seconds, _, _) =>
        {
            Interlocked.Increment(ref _waitCount);
            _waitSeconds += seconds; // enqueues of one producer loop: one at a time
        });
        _waits.Start();
        return cluster;
    }

    private async Task EnqueueAndFlushAsync()
    {
        _invocations++;
        var producer = _producer!;
        using var timeout = new CancellationTokenSource(BenchmarkEnvironment.InvocationTimeout);
        for (var i = 0; i < Messages; i++)
        {
            await producer.EnqueueAsync(Topic, _message, cancellationToken: timeout.Token).ConfigureAwait(false);
        }

        var left = await producer.FlushAsync(timeout.Token).ConfigureAwait(false);
        var failed = Interlocked.Read(ref _failed);
        if (left > 0 || failed > 0)
        {
            throw new InvalidOperationException($"{left} messages undelivered after the flush, {failed} delivery failures so far.");
        }
    }
}
