using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Testing;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>
/// Every broker down: a caller of ProduceAsync learns of the outage once librdkafka gives the message up
/// (<c>message.timeout.ms</c>), not after KafkaKit's retries wait it out again, and what it catches names the Kafka error.
/// </summary>
public sealed partial class KafkaProducerTests
{
    private const int OutageMessageTimeoutMs = 5_000;

    /// <summary>message.timeout.ms + 1 s: when a caller must have heard of the outage.</summary>
    private static readonly TimeSpan OutageNewsBound = TimeSpan.FromMilliseconds(OutageMessageTimeoutMs) + TimeSpan.FromSeconds(1);

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C19_AllBrokersDownSequentialProduces_FirstExceptionWithinMessageTimeoutPlusOneSecond(CancellationToken cancellationToken)
    {
        // Arrange: default retry options; the producer knows the topic, then every broker goes down.
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        var (producer, name, topic) = await StartOutageAsync(cluster, configure: null, cancellationToken);
        await using var _ = producer;
        using var attempts = new CounterCapture("messaging.client.sent.messages", name);

        // Act: as a request loop would: one awaited produce after the other, until the first exception.
        var clock = Stopwatch.StartNew();
        Exception? first = null;
        var calls = 0;
        while (calls < 200 && first is null)
        {
            calls++;
            try
            {
                await producer.ProduceAsync(topic, new Message<Null, string> { Value = $"m{calls}" }, cancellationToken);
            }
            catch (Exception e)
            {
                first = e;
            }
        }

        var firstAfter = clock.Elapsed;
        await TestContext.Out.WriteLineAsync($"first exception after {firstAfter.TotalSeconds:F2} s (call {calls}): {first?.GetType().Name} {(first as KafkaException)?.Error.Code}");

        // Assert: the first call fails once librdkafka gave it up, with the Kafka error, after one attempt.
        Assert.That(calls, Is.EqualTo(1), "the first call already reports the outage");
        Assert.That(first, Is.TypeOf<ProduceException<Null, string>>());
        Assert.That(((ProduceException<Null, string>)first!).Error.Code, Is.EqualTo(ErrorCode.Local_MsgTimedOut));
        Assert.That(firstAfter, Is.LessThanOrEqualTo(OutageNewsBound), "within message.timeout.ms + 1 s of the first call");
        Assert.That(attempts.Sum, Is.EqualTo(1), "one attempt: the timed-out message is not sent again");
        Assert.That(producer.QueuedMessages, Is.Zero);
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C19_AllBrokersDown200ConcurrentProduces_EachFailsOnceWithinMessageTimeoutPlusOneSecond(CancellationToken cancellationToken)
    {
        // Arrange
        const int Calls = 200;
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        var (producer, name, topic) = await StartOutageAsync(cluster, configure: null, cancellationToken);
        await using var _ = producer;
        using var attempts = new CounterCapture("messaging.client.sent.messages", name);

        // Act
        var clock = Stopwatch.StartNew();
        var calls = Enumerable.Range(0, Calls)
            .Select(i => producer.ProduceAsync(topic, new Message<Null, string> { Value = $"m{i}" }, cancellationToken).AsTask())
            .ToArray();
        var all = Task.WhenAll(calls);
        try
        {
            await all;
        }
        catch (ProduceException<Null, string>)
        {
            // each call's own exception is checked below
        }

        var allAfter = clock.Elapsed;
        var errors = calls.Select(c => c.Exception?.InnerException).ToList();
        await TestContext.Out.WriteLineAsync($"all {Calls} failed after {allAfter.TotalSeconds:F2} s: {string.Join(", ", errors.GroupBy(e => (e as KafkaException)?.Error.Code).Select(g => $"{g.Count()} {g.Key}"))}");

        // Assert: every call failed once, with the Kafka error, within message.timeout.ms + 1 s; one outcome per message.
        Assert.That(calls.Select(c => c.Status), Is.All.EqualTo(TaskStatus.Faulted));
        Assert.That(errors, Is.All.TypeOf<ProduceException<Null, string>>());
        Assert.That(errors.Select(e => ((ProduceException<Null, string>)e!).Error.Code), Is.All.EqualTo(ErrorCode.Local_MsgTimedOut));
        Assert.That(allAfter, Is.LessThanOrEqualTo(OutageNewsBound), "all within message.timeout.ms + 1 s");
        Assert.That(attempts.Sum, Is.EqualTo(Calls), "one outcome per message: no message was sent twice");
        Assert.That(attempts.SumWhere(e => e == nameof(ErrorCode.Local_MsgTimedOut)), Is.EqualTo(Calls));
        Assert.That(producer.QueuedMessages, Is.Zero);
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C19_CircuitBreakerOpenedByOutage_CallersCatchProducerCircuitOpenExceptionNamingTheKafkaError(CancellationToken cancellationToken)
    {
        // Arrange: the circuit breaker on, default retries; 20 concurrent produces time out and open the circuit.
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        var (producer, name, topic) = await StartOutageAsync(cluster, retry => retry.CircuitBreaker = true, cancellationToken);
        await using var _ = producer;
        using var attempts = new CounterCapture("messaging.client.sent.messages", name);
        var clock = Stopwatch.StartNew();
        var opening = Enumerable.Range(0, 20)
            .Select(i => producer.ProduceAsync(topic, new Message<Null, string> { Value = $"m{i}" }, cancellationToken).AsTask())
            .ToArray();
        try
        {
            await Task.WhenAll(opening);
        }
        catch (ProduceException<Null, string>)
        {
            // checked below
        }

        var openedAfter = clock.Elapsed;
        var attemptsBefore = attempts.Sum;

        // Act: callers while the circuit is open.
        var fast = Stopwatch.StartNew();
        var open = new List<Exception>();
        for (var i = 0; i < 200; i++)
        {
            open.Add(Assert.CatchAsync<Exception>(async () => await producer.ProduceAsync(topic, new Message<Null, string> { Value = "while open" }, cancellationToken))!);
        }

        var openCallsTook = fast.Elapsed;
        await TestContext.Out.WriteLineAsync($"circuit opened after {openedAfter.TotalSeconds:F2} s; 200 calls while open took {openCallsTook.TotalMilliseconds:F0} ms: {open[0]}");

        // Assert: the opening calls carry the Kafka error; the calls while open fail fast with the documented exception,
        // which names the Kafka error that opened the circuit and keeps Polly's exception inside; nothing was enqueued.
        Assert.That(opening.Select(t => (t.Exception?.InnerException as ProduceException<Null, string>)?.Error.Code), Is.All.EqualTo(ErrorCode.Local_MsgTimedOut));
        Assert.That(openedAfter, Is.LessThanOrEqualTo(OutageNewsBound));
        Assert.That(open, Is.All.TypeOf<ProducerCircuitOpenException>());
        var first = (ProducerCircuitOpenException)open[0];
        Assert.That(first, Is.InstanceOf<KafkaException>(), "a KafkaException, like every other produce failure");
        Assert.That(first.Error.Code, Is.EqualTo(ErrorCode.Local_MsgTimedOut), "names the Kafka error that opened the circuit");
        Assert.That(first.Error.Reason, Does.Contain(nameof(ErrorCode.Local_MsgTimedOut)).And.Contain(topic));
        Assert.That(first.Topic, Is.EqualTo(topic));
        Assert.That(first.InnerException, Is.TypeOf<Polly.CircuitBreaker.BrokenCircuitException>());
        Assert.That(first.RetryAfter, Is.Not.Null.And.GreaterThan(TimeSpan.Zero).And.LessThanOrEqualTo(TimeSpan.FromSeconds(5)));
        Assert.That(openCallsTook, Is.LessThan(TimeSpan.FromSeconds(2)), "fails fast while open");
        Assert.That(attempts.Sum, Is.EqualTo(attemptsBefore), "nothing was enqueued while the circuit was open");
        Assert.That(producer.QueuedMessages, Is.Zero);
    }

    /// <summary>
    /// A producer (message.timeout.ms 5 s, otherwise default options) that has delivered one message to a fresh
    /// 3-partition topic (so it knows the topic's leaders), then every broker of <paramref name="cluster"/> down.
    /// </summary>
    private static async Task<(IKafkaProducer<Null, string> Producer, string Name, string Topic)> StartOutageAsync(
        EmbeddedKafkaCluster cluster, Action<ProducerRetryOptions>? configure, CancellationToken cancellationToken)
    {
        var topic = cluster.NewTopic("outage-news", partitions: 3);
        var name = NewName("outage-news");
        var options = Options(cluster.BootstrapServers, ("message.timeout.ms", OutageMessageTimeoutMs.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        configure?.Invoke(options.Retry);
        var producer = Build<Null, string>(options, name: name);
        try
        {
            var warmUp = await producer.ProduceAsync(topic, new Message<Null, string> { Value = "before the outage" }, cancellationToken);
            Assert.That(warmUp.Status, Is.EqualTo(PersistenceStatus.Persisted));
        }
        catch
        {
            await producer.DisposeAsync();
            throw;
        }

        for (var broker = 1; broker <= cluster.BrokerCount; broker++)
        {
            cluster.SetBrokerDown(broker);
        }

        return (producer, name, topic);
    }
}
