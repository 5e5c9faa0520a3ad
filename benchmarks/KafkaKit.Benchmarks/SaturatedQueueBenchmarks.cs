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
/// the 90 % low-water mark) against the same producer with a queue that never fills (<see cref="UnconstrainedLimit"/>),
/// and against raw Confluent.Kafka with the same 10,000 limit and the loop an application writes by hand (catch
/// <c>Local_QueueFull</c>, flush for 1 ms, try again).
/// </summary>
/// <remarks>
/// <para>
/// The contract under test: a full queue is met by an asynchronous wait, with no exception in the steady state. Any
/// exception reaching the caller fails the invocation; the Exceptions column counts first-chance exceptions too, so a
/// <c>Local_QueueFull</c> caught inside KafkaKit (its backstop) shows up there, and the raw loop's own catches show up
/// in its row. The global cleanup prints how many enqueues waited (KafkaKit's <c>kafkakit.producer.backpressure.wait</c>
/// instrument) or how many raw produces met <c>Local_QueueFull</c>.
/// </para>
/// <para>
/// An invocation is 200,000 messages, 20 times the limit, so it measures sustained saturation: the queue fills within
/// the first 10,000 messages and stays at the limit; the start (an empty queue) and the final flush are a small part
/// of it. (With 50,000 messages the first fill, which waits for the first batches' round trip, and the flush were
/// half of the difference.)
/// </para>
/// <para>
/// The broker round-trip time (<see cref="RoundTripMs"/>) decides what a queue limit costs. By Little's law a queue of
/// N messages whose messages each stay R seconds (linger, the wait for one of the 5 in-flight requests, the round trip,
/// the delivery report) carries at most N / R messages per second, whatever the client. At 0 and 2 ms the 10,000 limit
/// is well above that bandwidth-delay product: the queue still fills again and again (the producer outruns the broker),
/// and the limited run should keep up with the unlimited one. At 10 ms the limit is below the product (~0.6 M msg/s x
/// ~20 ms): there the limit, not the client, bounds throughput, and the raw loop with the same limit is the baseline
/// that shows what the backpressure machinery costs.
/// </para>
/// </remarks>
[MemoryDiagnoser]
public class SaturatedQueueBenchmarks
{
    /// <summary>Messages per invocation.</summary>
    public const int Messages = 200_000;

    /// <summary>The constrained queue size (librdkafka <c>queue.buffering.max.messages</c>).</summary>
    public const int QueueLimit = 10_000;

    /// <summary>The unconstrained run's queue size: more than one invocation's messages, so it is never full.</summary>
    public const int UnconstrainedLimit = 1_000_000;

    private const string Topic = "bench-saturated";
    private const int Partitions = 6;

    private readonly Message<Null, byte[]> _message = new() { Value = BenchmarkEnvironment.NewValue() };
    private readonly Action<DeliveryReport<Null, byte[]>> _countingHandler;
    private EmbeddedKafkaCluster? _cluster;
    private IKafkaProducer<Null, byte[]>? _producer;
    private IProducer<Null, byte[]>? _raw;
    private MeterListener? _waits;
    private long _failed;
    private long _waitCount;
    private double _waitSeconds;
    private long _queueFull;
    private int _invocations;

    /// <summary>Initializes a new instance of the <see cref="SaturatedQueueBenchmarks"/> class.</summary>
    public SaturatedQueueBenchmarks()
    {
        _countingHandler = report =>
        {
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref _failed);
            }
        };
    }

    /// <summary>Gets or sets the broker round-trip time every variant runs with, ms.</summary>
    [Params(0, 2, 10)]
    public int RoundTripMs { get; set; }

    /// <summary>Starts the cluster and an unconstrained KafkaKit producer and warms it up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitUnconstrained))]
    public Task SetupUnconstrainedAsync()
    {
        _cluster = StartCluster();
        _producer = BenchmarkEnvironment.KafkaKitProducer(_cluster, _ => Interlocked.Increment(ref _failed), Limit(UnconstrainedLimit));
        return KafkaKitUnconstrained();
    }

    /// <summary>Starts the cluster and a KafkaKit producer limited to 10,000 queued messages and warms it up.</summary>
    /// <returns>A task that completes when ready.</returns>
    [GlobalSetup(Target = nameof(KafkaKitQueueLimit10K))]
    public Task SetupConstrainedAsync()
    {
        _cluster = StartCluster();
        _producer = BenchmarkEnvironment.KafkaKitProducer(_cluster, _ => Interlocked.Increment(ref _failed), Limit(QueueLimit));
        return KafkaKitQueueLimit10K();
    }

    /// <summary>Starts the cluster and a raw producer limited to 10,000 queued messages and warms it up.</summary>
    [GlobalSetup(Target = nameof(ConfluentQueueLimit10KRetryLoop))]
    public void SetupConfluent()
    {
        _cluster = StartCluster();
        _raw = BenchmarkEnvironment.RawProducer(_cluster, Limit(QueueLimit));
        ConfluentQueueLimit10KRetryLoop();
    }

    /// <summary>KafkaKit <c>EnqueueAsync</c> with the default queue (100,000 messages): never waits.</summary>
    /// <returns>A task that completes when every message is delivered.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public Task KafkaKitUnconstrained() => EnqueueAndFlushAsync();

    /// <summary>KafkaKit <c>EnqueueAsync</c> with a 10,000-message queue: waits for room asynchronously.</summary>
    /// <returns>A task that completes when every message is delivered.</returns>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task KafkaKitQueueLimit10K() => EnqueueAndFlushAsync();

    /// <summary>
    /// Raw Confluent.Kafka with a 10,000-message queue and the hand-written loop: <c>Produce</c>; on
    /// <c>Local_QueueFull</c> <c>Flush(1 ms)</c> (sends the queued batches and serves delivery reports) and try again.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Messages)]
    public void ConfluentQueueLimit10KRetryLoop()
    {
        _invocations++;
        var producer = _raw!;
        for (var i = 0; i < Messages; i++)
        {
            while (true)
            {
                try
                {
                    producer.Produce(Topic, _message, _countingHandler);
                    break;
                }
                catch (ProduceException<Null, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    _queueFull++;
                    producer.Flush(TimeSpan.FromMilliseconds(1));
                }
            }
        }

        ThrowIfFailed(producer.Flush(BenchmarkEnvironment.InvocationTimeout));
    }

    /// <summary>Disposes the producer and the cluster.</summary>
    /// <returns>A task that completes when released.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _waits?.Dispose();
        Console.WriteLine(_raw is null
            ? $"// Backpressure ({RoundTripMs} ms): {Interlocked.Read(ref _waitCount)} enqueues waited for room, {_waitSeconds:F3} s in total, over {_invocations} invocations of {Messages} messages."
            : $"// Backpressure ({RoundTripMs} ms): {_queueFull} raw produces met Local_QueueFull over {_invocations} invocations of {Messages} messages.");
        _raw?.Dispose();

        if (_producer is not null)
        {
            await _producer.DisposeAsync().ConfigureAwait(false);
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static KeyValuePair<string, string> Limit(int messages) =>
        new("queue.buffering.max.messages", messages.ToString(System.Globalization.CultureInfo.InvariantCulture));

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

        ThrowIfFailed(await producer.FlushAsync(timeout.Token).ConfigureAwait(false));
    }

    private void ThrowIfFailed(int left)
    {
        var failed = Interlocked.Read(ref _failed);
        if (left > 0 || failed > 0)
        {
            throw new InvalidOperationException($"{left} messages undelivered after the flush, {failed} delivery failures so far.");
        }
    }
}
