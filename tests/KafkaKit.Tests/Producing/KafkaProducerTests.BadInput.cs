using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Tests.Support;
using KafkaKit.Testing;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>Bad input, misuse after dispose and a faulted producer: clear exceptions, nothing enqueued, nothing retried.</summary>
public sealed partial class KafkaProducerTests
{
    [TestCase(null)]
    [TestCase("")]
    [CancelAfter(30_000)]
    public async Task EnqueueAsync_NullOrEmptyTopic_ThrowsArgumentExceptionNamingTopic(string? topic, CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var producer = Build<Null, string>(Options(cluster.BootstrapServers));
        var message = new Message<Null, string> { Value = "v" };

        // Act / Assert
        Assert.That(Assert.CatchAsync<ArgumentException>(async () => await producer.EnqueueAsync(topic!, message, cancellationToken: cancellationToken))!.ParamName, Is.EqualTo("topic"));
        Assert.That(Assert.Catch<ArgumentException>(() => producer.TryEnqueue(topic!, message))!.ParamName, Is.EqualTo("topic"));
        Assert.That(Assert.CatchAsync<ArgumentException>(async () => await producer.ProduceAsync(topic!, message, cancellationToken))!.ParamName, Is.EqualTo("topic"));
        Assert.That(producer.QueuedMessages, Is.Zero);
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task EnqueueAsync_NullMessage_ThrowsArgumentNullException(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        await using var producer = Build<Null, string>(Options(cluster.BootstrapServers));

        // Act / Assert
        Assert.That(Assert.ThrowsAsync<ArgumentNullException>(async () => await producer.EnqueueAsync("topic", null!, cancellationToken: cancellationToken))!.ParamName, Is.EqualTo("message"));
        Assert.That(Assert.Throws<ArgumentNullException>(() => producer.TryEnqueue("topic", null!))!.ParamName, Is.EqualTo("message"));
        Assert.That(Assert.ThrowsAsync<ArgumentNullException>(async () => await producer.ProduceAsync("topic", null!, cancellationToken))!.ParamName, Is.EqualTo("message"));
        Assert.That(producer.QueuedMessages, Is.Zero);
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task EnqueueAsync_SerializerThrows_ThrowsValueSerializationNothingEnqueuedNotRetried(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("serializer", partitions: 1);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, 1);
        var serializer = new ThrowingSerializer();
        var logs = new CapturingLoggerFactory();
        var outcomes = new Outcomes();
        await using var producer = Build<Null, string>(Options(cluster.BootstrapServers), logs, configure: b => b.SetValueSerializer(serializer));
        var message = new Message<Null, string> { Value = "unserializable" };

        // Act
        var enqueue = Assert.ThrowsAsync<ProduceException<Null, string>>(async () => await producer.EnqueueAsync(topic, message, outcomes.Record, cancellationToken));
        var tryEnqueue = Assert.Throws<ProduceException<Null, string>>(() => producer.TryEnqueue(topic, message, outcomes.Record));
        var callsBeforeProduce = serializer.Calls;
        var produce = Assert.ThrowsAsync<ProduceException<Null, string>>(async () => await producer.ProduceAsync(topic, message, cancellationToken));
        var undelivered = await producer.FlushAsync(cancellationToken);

        // Assert
        Assert.That(new[] { enqueue!.Error.Code, tryEnqueue!.Error.Code, produce!.Error.Code }, Is.All.EqualTo(ErrorCode.Local_ValueSerialization));
        Assert.That(produce.Error.Reason, Does.Contain("cannot serialize"), "the serializer's reason is kept");
        Assert.That(serializer.Calls - callsBeforeProduce, Is.EqualTo(1), "ProduceAsync does not retry a serialization error");
        Assert.That(logs.WithEventId(1008), Is.Empty, "no retry");
        Assert.That(producer.QueuedMessages, Is.Zero, "nothing enqueued");
        Assert.That(undelivered, Is.Zero);
        Assert.That(outcomes.Total, Is.Zero, "a refused message gets no delivery report");
        Assert.That(await reader.ReadAsync(0, TimeSpan.FromSeconds(10), cancellationToken), Is.Zero);
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task EnqueueAsync_AfterFatalError_ThrowsProducerFaultedAndWaitersFailFast(CancellationToken cancellationToken)
    {
        // Arrange: the embedded cluster cannot make an idempotent producer fail fatally, so librdkafka's own test hook
        // (rd_kafka_test_fatal_error) raises a real fatal error inside the producer's librdkafka instance. No broker is
        // reachable and the queue holds 1 message, so a second enqueue waits for room.
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("fatal", partitions: 1);
        cluster.SetBrokerDown(1);
        var logs = new CapturingLoggerFactory();
        var outcomes = new Outcomes();
        var options = Options(cluster.BootstrapServers, ("queue.buffering.max.messages", "1"));
        options.FlushTimeoutOnDispose = TimeSpan.FromMilliseconds(200);
        var producer = Build<Null, string>(options, logs);
        await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "queued" }, outcomes.Record, cancellationToken);
        var waiting = producer.EnqueueAsync(topic, new Message<Null, string> { Value = "waiting" }, outcomes.Record, cancellationToken).AsTask();
        await Wait.ForAsync(() => ((KafkaProducer<Null, string>)producer).WaitingForRoom > 0, TimeSpan.FromSeconds(10), "((KafkaProducer<Null, string>)producer).WaitingForRoom > 0", cancellationToken);

        // Act
        Assert.That(FatalErrorHook.Raise(producer, ErrorCode.OutOfOrderSequenceNumber, "injected by the test"), Is.EqualTo(ErrorCode.NoError));
        await Wait.ForAsync(() => producer.FatalError is not null, TimeSpan.FromSeconds(10), "producer.FatalError is not null", cancellationToken);
        var waiterError = Assert.ThrowsAsync<ProducerFaultedException>(async () => await waiting);
        var enqueueError = Assert.ThrowsAsync<ProducerFaultedException>(async () => await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "after" }, outcomes.Record, cancellationToken));
        var tryEnqueueError = Assert.Throws<ProducerFaultedException>(() => producer.TryEnqueue(topic, new Message<Null, string> { Value = "after" }));
        var produceError = Assert.ThrowsAsync<ProducerFaultedException>(async () => await producer.ProduceAsync(topic, new Message<Null, string> { Value = "after" }, cancellationToken));
        await producer.DisposeAsync();

        // Assert
        Assert.That(producer.FatalError!.IsFatal, Is.True);
        Assert.That(producer.FatalError.Code, Is.EqualTo(ErrorCode.OutOfOrderSequenceNumber));
        foreach (var e in new[] { waiterError!, enqueueError!, tryEnqueueError!, produceError! })
        {
            Assert.That(e.Error.Code, Is.EqualTo(ErrorCode.OutOfOrderSequenceNumber));
            Assert.That(e.Error.IsFatal, Is.True);
        }

        var faulted = logs.WithEventId(1003).ToList();
        Assert.That(faulted, Has.Count.EqualTo(1), "one critical log line");
        Assert.That(faulted[0].Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Critical));
        Assert.That(outcomes.Total, Is.EqualTo(1), "the message accepted before the fault still gets its one outcome");
        Assert.That(outcomes.Failed, Is.EqualTo(1), outcomes.ToString());
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Enqueue_NullTopic_ThrowsArgumentNullNamingTopic()
    {
        await using var producer = new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = Unreachable }).Build();

        var e = Assert.ThrowsAsync<ArgumentNullException>(async () => await producer.EnqueueAsync(null!, new Message<string, string> { Value = "v" }));

        Assert.Multiple(() =>
        {
            Assert.That(e!.ParamName, Is.EqualTo("topic"));
            Assert.That(producer.QueuedMessages, Is.Zero);
        });
    }

    /// <summary>librdkafka refuses a message larger than message.max.bytes when it is produced: nothing is enqueued.</summary>
    [Test]
    [CancelAfter(30_000)]
    public async Task Enqueue_ValueOverMessageMaxBytes_ThrowsMsgSizeTooLargeBeforeEnqueueNamingTheLimit()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable };
        options.Config["message.max.bytes"] = "1000";
        await using var producer = new KafkaProducerBuilder<string, string>("p", options).Build();

        var e = Assert.ThrowsAsync<ProduceException<string, string>>(async () => await producer.EnqueueAsync("t", new Message<string, string> { Value = new string('x', 5_000) }));

        TestContext.Out.WriteLine($"{e!.Error.Code}: {e.Message}");
        Assert.Multiple(() =>
        {
            Assert.That(e.Error.Code, Is.EqualTo(ErrorCode.MsgSizeTooLarge));
            Assert.That(e.Message, Does.Contain("message.max.bytes").And.Contain("1000"), "the message names the limit");
            Assert.That(producer.QueuedMessages, Is.Zero, "nothing enqueued");
        });
    }

    /// <summary>Headers count toward message.max.bytes (librdkafka adds their serialized size to key and value).</summary>
    [Test]
    [CancelAfter(30_000)]
    public async Task Enqueue_HeadersOverMessageMaxBytes_ThrowsMsgSizeTooLargeBeforeEnqueue()
    {
        var options = new KafkaProducerOptions { BootstrapServers = Unreachable };
        options.Config["message.max.bytes"] = "1000";
        await using var producer = new KafkaProducerBuilder<string, string>("p", options).Build();
        var message = new Message<string, string> { Value = "small", Headers = new Headers { { "big", new byte[5_000] } } };

        var e = Assert.ThrowsAsync<ProduceException<string, string>>(async () => await producer.EnqueueAsync("t", message));

        Assert.Multiple(() =>
        {
            Assert.That(e!.Error.Code, Is.EqualTo(ErrorCode.MsgSizeTooLarge));
            Assert.That(e.Message, Does.Contain("message.max.bytes").And.Contain("1000"));
            Assert.That(producer.QueuedMessages, Is.Zero);
        });
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Producer_DisposedTwice_SecondDisposeIsANoOp()
    {
        var producer = new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = Unreachable }).Build();
        await producer.DisposeAsync();

        Assert.DoesNotThrowAsync(async () => await producer.DisposeAsync());
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Producer_UsedAfterDispose_ThrowsObjectDisposedOnEveryCall()
    {
        var producer = new KafkaProducerBuilder<string, string>("p", new KafkaProducerOptions { BootstrapServers = Unreachable }).Build();
        await producer.DisposeAsync();
        var message = new Message<string, string> { Value = "v" };

        Assert.Multiple(() =>
        {
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await producer.EnqueueAsync("t", message));
            Assert.Throws<ObjectDisposedException>(() => producer.TryEnqueue("t", message));
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await producer.ProduceAsync("t", message));
            Assert.ThrowsAsync<ObjectDisposedException>(async () => await producer.FlushAsync());
            Assert.Throws<ObjectDisposedException>(() => producer.Flush(TimeSpan.FromSeconds(1)));
        });
    }

    /// <summary>A value serializer that always throws, counting its calls.</summary>
    private sealed class ThrowingSerializer : ISerializer<string>
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public byte[] Serialize(string data, SerializationContext context)
        {
            Interlocked.Increment(ref _calls);
            throw new InvalidOperationException($"The test serializer cannot serialize '{data}'.");
        }
    }
}
