using System.Collections.Concurrent;
using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Tests.Support;
using KafkaKit.Testing;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>Delivery callbacks: a throwing callback is logged and counted and stops nothing (C4).</summary>
public sealed partial class KafkaProducerTests
{
    [Test]
    [CancelAfter(30_000)]
    public async Task Regression_C4_EnqueueAsync_FirstCallbackThrows_LaterCallbacksRunAndErrorIsLoggedAndCounted(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("c4", partitions: 1);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, 1);
        var logs = new CapturingLoggerFactory();
        var name = NewName("c4");
        using var callbackErrors = new CounterCapture("kafkakit.producer.callback.errors", name);
        var laterCallbacks = new ConcurrentBag<int>();
        var producer = Build<Null, string>(Options(cluster.BootstrapServers), logs, name);

        // Act
        await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "first" }, _ => throw new InvalidOperationException("callback 1 failed"), cancellationToken);
        await producer.FlushAsync(cancellationToken);
        for (var i = 0; i < 10; i++)
        {
            var n = i;
            await producer.EnqueueAsync(topic, new Message<Null, string> { Value = $"later-{n}" }, r => laterCallbacks.Add(r.Error.IsError ? -1 : n), cancellationToken);
        }

        var undelivered = await producer.FlushAsync(cancellationToken);
        var counted = ((KafkaProducer<Null, string>)producer).CallbackErrors;
        await producer.DisposeAsync();

        // Assert
        var logged = logs.WithEventId(1001).ToList();
        Assert.That(undelivered, Is.Zero);
        Assert.That(laterCallbacks.OrderBy(n => n), Is.EqualTo(Enumerable.Range(0, 10)), "the 10 later callbacks ran, each with a delivered report");
        Assert.That(logged, Has.Count.EqualTo(1), "the exception is logged once");
        Assert.That(logged[0].Exception, Is.InstanceOf<InvalidOperationException>().With.Message.EqualTo("callback 1 failed"));
        Assert.That(counted, Is.EqualTo(1), "counted by the producer");
        Assert.That(callbackErrors.Sum, Is.EqualTo(1), "counted by kafkakit.producer.callback.errors");
        Assert.That(await reader.ReadAsync(11, TimeSpan.FromSeconds(10), cancellationToken), Is.EqualTo(11));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task DeliveryFailedHandler_ThrowsForUncallbackedFailure_IsLoggedAndCounted(CancellationToken cancellationToken)
    {
        // Arrange: a message without a callback fails for good (the broker refuses it); the producer-wide handler throws.
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("failed-handler", partitions: 1);
        var logs = new CapturingLoggerFactory();
        var name = NewName("failed-handler");
        using var callbackErrors = new CounterCapture("kafkakit.producer.callback.errors", name);
        var handled = new ConcurrentBag<ErrorCode>();
        var options = Options(cluster.BootstrapServers, ("enable.idempotence", "false"), ("retries", "0"));
        await using var producer = Build<Null, string>(options, logs, name, b => b.SetDeliveryFailedHandler(r =>
        {
            handled.Add(r.Error.Code);
            throw new InvalidOperationException("handler failed");
        }));
        cluster.PushRequestErrors(ApiKey.Produce, ErrorCode.MsgSizeTooLarge);

        // Act
        await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "no callback" }, cancellationToken: cancellationToken);
        var undelivered = await producer.FlushAsync(cancellationToken);

        // Assert
        Assert.That(undelivered, Is.Zero);
        Assert.That(handled, Is.EqualTo(new[] { ErrorCode.MsgSizeTooLarge }), "the handler saw the failure once");
        Assert.That(logs.WithEventId(1002).Count(), Is.EqualTo(1), "the failed delivery is logged");
        Assert.That(logs.WithEventId(1010).Count(), Is.EqualTo(1), "the handler's exception is logged");
        Assert.That(callbackErrors.Sum, Is.EqualTo(1), "and counted");
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task DisposeAsync_ManyUncallbackedMessagesPurged_HandlerSeesEachButOneLogLine(CancellationToken cancellationToken)
    {
        // Arrange: 1,000 messages without callbacks, no broker reachable, a short flush timeout at dispose.
        const int count = 1_000;
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("purged", partitions: 1);
        cluster.SetBrokerDown(1);
        var logs = new CapturingLoggerFactory();
        var handled = new Outcomes();
        var options = Options(cluster.BootstrapServers);
        options.FlushTimeoutOnDispose = TimeSpan.FromMilliseconds(100);
        var producer = Build<Null, string>(options, logs, configure: b => b.SetDeliveryFailedHandler(handled.Record));
        for (var i = 0; i < count; i++)
        {
            await producer.EnqueueAsync(topic, new Message<Null, string> { Value = $"m{i}" }, cancellationToken: cancellationToken);
        }

        // Act
        await producer.DisposeAsync();

        // Assert
        Assert.That(handled.Failed, Is.EqualTo(count), handled.ToString());
        Assert.That(logs.WithEventId(1006).Single().Message, Does.Contain($"{count} messages"), "one summary line");
        Assert.That(logs.WithEventId(1002), Is.Empty, "no line per purged message");
        Assert.That(logs.WithEventId(1011), Is.Empty, "nothing left without an outcome");
    }
}
