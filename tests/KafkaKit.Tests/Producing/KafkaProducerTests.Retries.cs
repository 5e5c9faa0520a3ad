using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using KafkaKit.DependencyInjection;
using KafkaKit.Hosting;
using KafkaKit.Producing;
using KafkaKit.Tests.Support;
using KafkaKit.Testing;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>ProduceAsync's retry pipeline: retriable failures are retried, permanent ones fail once.</summary>
public sealed partial class KafkaProducerTests
{
    [Test]
    [CancelAfter(30_000)]
    public async Task ProduceAsync_RetriableErrorsPushedForProduce_RetriesAndSucceeds(CancellationToken cancellationToken)
    {
        // Arrange: librdkafka's own retries off (retries=0, no idempotence), so each broker error reaches KafkaKit's
        // pipeline. (NotLeaderForPartition would not: librdkafka re-queues it after a metadata refresh without counting
        // a retry.)
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("retry", partitions: 1);
        await using var reader = new TopicReader<Ignore, string>(cluster.BootstrapServers, topic, 1, keepRecords: true);
        var (producer, logs, serializer, attempts) = BuildForRetries(cluster);
        await using var _ = producer;
        using var __ = attempts;
        cluster.PushRequestErrors(ApiKey.Produce, ErrorCode.NotEnoughReplicas, ErrorCode.RequestTimedOut);

        // Act
        var result = await producer.ProduceAsync(topic, new Message<Null, string> { Value = "retried" }, cancellationToken);

        // Assert
        Assert.That(result.Status, Is.EqualTo(PersistenceStatus.Persisted));
        Assert.That(result.Offset.Value, Is.GreaterThanOrEqualTo(0));
        Assert.That(serializer.Calls, Is.EqualTo(3), "three attempts: two failed, one delivered");
        Assert.That(attempts.SumWhere(e => e is not null), Is.EqualTo(2), "two failed outcomes");
        Assert.That(attempts.SumWhere(e => e is null), Is.EqualTo(1), "one delivered outcome");
        var retries = logs.WithEventId(1008).Select(e => e.Message).ToList();
        Assert.That(retries, Has.Count.EqualTo(2), "KafkaKit logged each retry");
        Assert.That(retries[0], Does.Contain(nameof(ErrorCode.NotEnoughReplicas)));
        Assert.That(retries[1], Does.Contain(nameof(ErrorCode.RequestTimedOut)));
        Assert.That(await reader.ReadAsync(1, TimeSpan.FromSeconds(10), cancellationToken), Is.EqualTo(1));
        Assert.That(reader.Records.Single().Message.Value, Is.EqualTo("retried"));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ProduceAsync_RetriedAfterFailedDeliveries_EveryAttemptsSpanIsAChildOfTheCallersActivity(CancellationToken cancellationToken)
    {
        // Arrange: the failed deliveries are reported on the delivery thread, and the retries they start run on the
        // thread pool: they must still run in the caller's context, so their spans join the caller's trace.
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("retry-traced", partitions: 1);
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "KafkaKit",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (Equals(a.GetTagItem("messaging.destination.name"), topic))
                {
                    spans.Enqueue(a);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        var (producer, _, serializer, attempts) = BuildForRetries(cluster);
        await using var _ = producer;
        using var __ = attempts;
        cluster.PushRequestErrors(ApiKey.Produce, ErrorCode.NotEnoughReplicas, ErrorCode.RequestTimedOut);
        using var caller = new Activity("caller").Start();

        // Act
        var result = await producer.ProduceAsync(topic, new Message<Null, string> { Value = "traced" }, cancellationToken);

        // Assert
        Assert.That(Activity.Current, Is.SameAs(caller), "no send span stays current on the caller's flow");
        caller.Stop();
        Assert.That(result.Status, Is.EqualTo(PersistenceStatus.Persisted));
        Assert.That(serializer.Calls, Is.EqualTo(3), "three attempts: two failed, one delivered");
        var sends = spans.ToList();
        Assert.That(sends, Has.Count.EqualTo(3), "one send span per attempt");
        Assert.That(sends.Select(s => s.ParentSpanId), Is.All.EqualTo(caller.SpanId), "every attempt's span is a child of the caller's activity");
        Assert.That(sends.Select(s => s.TraceId), Is.All.EqualTo(caller.TraceId));
        Assert.That(sends.Count(s => s.Status == ActivityStatusCode.Error), Is.EqualTo(2), "the two failed attempts");
        Assert.That(sends.Last().Status, Is.Not.EqualTo(ActivityStatusCode.Error), "the delivered attempt");
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ProduceAsync_RetriableErrorsBeyondMaxRetries_FailsAfterLastRetry(CancellationToken cancellationToken)
    {
        // Arrange: 3 retries allowed, 5 errors pushed.
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("retry-exhausted", partitions: 1);
        var (producer, logs, serializer, attempts) = BuildForRetries(cluster);
        await using var _ = producer;
        using var __ = attempts;
        cluster.PushRequestErrors(ApiKey.Produce, Enumerable.Repeat(ErrorCode.NotEnoughReplicas, 5).ToArray());

        // Act
        var e = Assert.ThrowsAsync<ProduceException<Null, string>>(
            async () => await producer.ProduceAsync(topic, new Message<Null, string> { Value = "given up" }, cancellationToken));

        // Assert
        Assert.That(e!.Error.Code, Is.EqualTo(ErrorCode.NotEnoughReplicas));
        Assert.That(serializer.Calls, Is.EqualTo(4), "the first attempt and 3 retries");
        Assert.That(attempts.Sum, Is.EqualTo(4), "four failed outcomes");
        Assert.That(logs.WithEventId(1008).Count(), Is.EqualTo(3));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ProduceAsync_RetriableErrorsOutlastMaxRetryDuration_FailsWithTheLastErrorOnceTheBudgetIsSpent(CancellationToken cancellationToken)
    {
        // Arrange: attempts would allow 100 retries, the time budget 1 s; every produce fails (retriable).
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("retry-budget", partitions: 1);
        var budget = TimeSpan.FromSeconds(1);
        var (producer, logs, serializer, attempts) = BuildForRetries(cluster, retry =>
        {
            retry.MaxRetryAttempts = 100;
            retry.BaseDelay = TimeSpan.FromMilliseconds(150);
            retry.MaxDelay = TimeSpan.FromMilliseconds(300);
            retry.MaxRetryDuration = budget;
        });
        await using var _ = producer;
        using var __ = attempts;
        cluster.PushRequestErrors(ApiKey.Produce, Enumerable.Repeat(ErrorCode.NotEnoughReplicas, 200).ToArray());

        // Act
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.ThrowsAsync<ProduceException<Null, string>>(
            async () => await producer.ProduceAsync(topic, new Message<Null, string> { Value = "out of time" }, cancellationToken));
        var elapsed = clock.Elapsed;

        // Assert: retried until the budget was spent (the last retry started within it), then the last error.
        Assert.That(e!.Error.Code, Is.EqualTo(ErrorCode.NotEnoughReplicas));
        Assert.That(elapsed, Is.InRange(budget - TimeSpan.FromMilliseconds(50), budget + TimeSpan.FromSeconds(1.5)), "ends once the budget is spent, plus one quick attempt");
        Assert.That(serializer.Calls, Is.InRange(3, 30), "several attempts within 1 s of 150-300 ms backoffs, far fewer than MaxRetryAttempts");
        Assert.That(attempts.Sum, Is.EqualTo(serializer.Calls), "one failed outcome per attempt");
        Assert.That(logs.WithEventId(1008).Count(), Is.EqualTo(serializer.Calls - 1), "each retry logged");
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ProduceAsync_CircuitBreakerOpens_FailsFastAndHealthIsDegradedUntilATrialProduceSucceeds(CancellationToken cancellationToken)
    {
        // Arrange: no retries, a circuit breaker (opens at >= 50 % failures over >= 10 produces), 10 failures pushed.
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("circuit", partitions: 1);
        var (producer, _, serializer, _) = BuildForRetries(cluster, retry =>
        {
            retry.MaxRetryAttempts = 0;
            retry.CircuitBreaker = true;
            retry.CircuitBreakDuration = TimeSpan.FromMilliseconds(500);
        });
        await using var _ = producer;
        var clients = new KafkaKitClients();
        clients.Add(KafkaClientHealth.For(producer));
        var health = new KafkaKitHealthCheck(clients);
        cluster.PushRequestErrors(ApiKey.Produce, Enumerable.Repeat(ErrorCode.NotEnoughReplicas, 10).ToArray());
        var message = new Message<Null, string> { Value = "v" };
        for (var i = 0; i < 10; i++)
        {
            Assert.ThrowsAsync<ProduceException<Null, string>>(async () => await producer.ProduceAsync(topic, message, cancellationToken));
        }

        // Act
        var attemptsBefore = serializer.Calls;
        var open = Assert.CatchAsync<Exception>(async () => await producer.ProduceAsync(topic, message, cancellationToken));
        var whileOpen = await health.CheckHealthAsync(new HealthCheckContext(), cancellationToken);
        await Wait.ForAsync(
            async () =>
            {
                try
                {
                    await producer.ProduceAsync(topic, message, cancellationToken); // the trial produce, once the break ends
                    return true;
                }
                catch (ProducerCircuitOpenException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(10),
            "a trial produce succeeds after the break");
        var afterTrial = await health.CheckHealthAsync(new HealthCheckContext(), cancellationToken);

        // Assert
        Assert.That(open, Is.TypeOf<ProducerCircuitOpenException>(), "fails fast while the circuit is open");
        Assert.That(((ProducerCircuitOpenException)open!).Error.Code, Is.EqualTo(ErrorCode.NotEnoughReplicas), "names the last Kafka error");
        Assert.That(open!.InnerException, Is.TypeOf<Polly.CircuitBreaker.BrokenCircuitException>());
        Assert.That(serializer.Calls, Is.GreaterThan(attemptsBefore), "the trial produce was attempted");
        Assert.That(whileOpen.Status, Is.EqualTo(HealthStatus.Degraded));
        Assert.That(string.Join(", ", whileOpen.Data.Values), Does.Contain("circuit open"));
        Assert.That(afterTrial.Status, Is.EqualTo(HealthStatus.Healthy), string.Join(", ", afterTrial.Data.Values));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ProduceAsync_PermanentErrorPushedForProduce_FailsOnceWithoutRetry(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("permanent", partitions: 1);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, 1);
        var (producer, logs, serializer, attempts) = BuildForRetries(cluster);
        await using var _ = producer;
        using var __ = attempts;
        cluster.PushRequestErrors(ApiKey.Produce, ErrorCode.MsgSizeTooLarge);

        // Act
        var e = Assert.ThrowsAsync<ProduceException<Null, string>>(
            async () => await producer.ProduceAsync(topic, new Message<Null, string> { Value = "refused" }, cancellationToken));

        // Assert
        Assert.That(e!.Error.Code, Is.EqualTo(ErrorCode.MsgSizeTooLarge));
        Assert.That(serializer.Calls, Is.EqualTo(1), "exactly one attempt");
        Assert.That(attempts.Sum, Is.EqualTo(1), "exactly one outcome");
        Assert.That(logs.WithEventId(1008), Is.Empty, "no retry");
        Assert.That(await reader.ReadAsync(0, TimeSpan.FromSeconds(10), cancellationToken), Is.Zero);
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task ProduceAsync_ValueLargerThanMessageMaxBytes_FailsOnceWithoutRetry(CancellationToken cancellationToken)
    {
        // Arrange: default config (idempotence on, librdkafka retries on); librdkafka refuses the message at enqueue.
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("too-large", partitions: 1);
        var logs = new CapturingLoggerFactory();
        var serializer = new CountingSerializer();
        var options = Options(cluster.BootstrapServers, ("message.max.bytes", "1000"));
        await using var producer = Build<Null, string>(options, logs, configure: b => b.SetValueSerializer(serializer));

        // Act
        var e = Assert.ThrowsAsync<ProduceException<Null, string>>(
            async () => await producer.ProduceAsync(topic, new Message<Null, string> { Value = new string('x', 5_000) }, cancellationToken));

        // Assert
        Assert.That(e!.Error.Code, Is.EqualTo(ErrorCode.MsgSizeTooLarge));
        Assert.That(serializer.Calls, Is.EqualTo(1), "exactly one attempt");
        Assert.That(logs.WithEventId(1008), Is.Empty, "no retry");
        Assert.That(producer.QueuedMessages, Is.Zero, "nothing was enqueued");
    }

    private static (IKafkaProducer<Null, string> Producer, CapturingLoggerFactory Logs, CountingSerializer Serializer, CounterCapture Attempts) BuildForRetries(
        EmbeddedKafkaCluster cluster, Action<ProducerRetryOptions>? configure = null)
    {
        var logs = new CapturingLoggerFactory();
        var serializer = new CountingSerializer();
        var name = NewName("retry");
        var attempts = new CounterCapture("messaging.client.sent.messages", name);
        var options = Options(
            cluster.BootstrapServers,
            ("enable.idempotence", "false"),
            ("retries", "0"),
            ("message.timeout.ms", "5000"));
        options.Retry.MaxRetryAttempts = 3;
        options.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
        options.Retry.MaxDelay = TimeSpan.FromMilliseconds(50);
        configure?.Invoke(options.Retry);
        var producer = Build<Null, string>(options, logs, name, b => b.SetValueSerializer(serializer));
        return (producer, logs, serializer, attempts);
    }

    /// <summary>A UTF-8 serializer that counts its calls: one call per produce attempt.</summary>
    private sealed class CountingSerializer : ISerializer<string>
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public byte[] Serialize(string data, SerializationContext context)
        {
            Interlocked.Increment(ref _calls);
            return Encoding.UTF8.GetBytes(data);
        }
    }
}
