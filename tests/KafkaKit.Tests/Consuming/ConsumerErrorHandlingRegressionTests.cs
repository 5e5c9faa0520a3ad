using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

/// <summary>Field case C12 (a poison message stops the consumer) and the other error policies.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)] // fixtures overlap (most of their time is spent waiting on the cluster); tests within one run in sequence
public sealed class ConsumerErrorHandlingRegressionTests
{
    private const string BadJson = "{\"id\": \"bad\", \"amount\": ";

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C12_UndeserializableValueWithDeadLetter_RawBytesDeadLetteredAndConsumerGoesOn()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("c12.DLT", partitions: 1);
        var (consumer, orders, logs, committed) = await ConsumeOkBadOkAsync(cluster, "c12", ConsumerErrorAction.DeadLetter);
        await using var _ = consumer;
        var dead = KafkaProbe.ReadAll(cluster.BootstrapServers, "c12.DLT", 1, expected: 1, TimeSpan.FromSeconds(10));

        KafkaProbe.Produce(cluster.BootstrapServers, "c12", [new Message<string, string> { Key = "k", Value = "{\"id\":\"ok3\",\"amount\":3}" }]);
        await Wait.ForAsync(() => orders.Count == 3, TimeSpan.FromSeconds(10), "the consumer keeps running: ok3 handled");

        Assert.That(dead, Has.Count.EqualTo(1), "one dead letter");
        var letter = dead[0];
        string Header(string key) => Encoding.UTF8.GetString(letter.Message.Headers.GetLastBytes(key));
        Assert.Multiple(() =>
        {
            Assert.That(orders, Is.EqualTo(new[] { "ok1", "ok2", "ok3" }));
            Assert.That(committed[0], Is.EqualTo(3));
            Assert.That(letter.Message.Value, Is.EqualTo(Encoding.UTF8.GetBytes(BadJson)), "the raw value bytes");
            Assert.That(letter.Message.Key, Is.EqualTo(Encoding.UTF8.GetBytes("k-bad")), "the raw key bytes");
            Assert.That(Header("trace"), Is.EqualTo("t-1"), "the original headers are kept");
            Assert.That(Header(DeadLetterPublisher.OriginalTopicHeader), Is.EqualTo("c12"));
            Assert.That(Header(DeadLetterPublisher.OriginalPartitionHeader), Is.EqualTo("0"));
            Assert.That(Header(DeadLetterPublisher.OriginalOffsetHeader), Is.EqualTo("1"));
            Assert.That(Header(DeadLetterPublisher.ConsumerGroupHeader), Is.EqualTo("c12-group"));
            Assert.That(Header(DeadLetterPublisher.ExceptionTypeHeader), Does.Contain("JsonException"));
            Assert.That(Header(DeadLetterPublisher.ExceptionMessageHeader), Is.Not.Empty);
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
            Assert.That(consumer.Fault, Is.Null);
            Assert.That(logs.Count(2009), Is.EqualTo(1), "one dead-lettered log line");
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C12_UndeserializableValueWithSkip_SkippedLoggedAndCommittedPast()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        var (consumer, orders, logs, committed) = await ConsumeOkBadOkAsync(cluster, "c12s", ConsumerErrorAction.Skip);
        await using var _ = consumer;

        var failed = logs.Lines.Where(l => l.EventId.Id == 2008).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(orders, Is.EqualTo(new[] { "ok1", "ok2" }));
            Assert.That(committed[0], Is.EqualTo(3));
            Assert.That(failed, Has.Count.EqualTo(1), "the skipped message is logged once");
            Assert.That(failed[0].Message, Does.Contain("@1").And.Contain("deserialization").And.Contain("Skip"));
            Assert.That(logs.Count(2009), Is.Zero, "nothing dead-lettered");
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
        });
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task HandlerFailure_RetriesExhaustedWithDeadLetter_DeadLetteredOnceAndNextMessagesHandled()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("dl", partitions: 1);
        cluster.CreateTopic("dl-failed", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "dl", ConsumerTestKit.Messages("m", 3));
        var options = ConsumerTestKit.Options(cluster, "dl-group", "dl");
        options.OnError = ConsumerErrorAction.DeadLetter;
        options.DeadLetterTopic = "dl-failed";
        options.Retry.MaxRetryAttempts = 2;
        options.Retry.BaseDelay = TimeSpan.FromMilliseconds(20);
        options.CommitInterval = TimeSpan.FromMilliseconds(500);
        var calls = new ConcurrentQueue<string>();
        await using var consumer = new KafkaConsumerBuilder<string, string>("dl", options)
            .SetHandler((r, _) =>
            {
                calls.Enqueue(r.Message.Value);
                return r.Message.Value == "m1" ? throw new TimeoutException("downstream timed out") : ValueTask.CompletedTask;
            })
            .Build();

        await consumer.StartAsync();
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "dl-group", "dl", 1, c => c[0] == 3, TimeSpan.FromSeconds(15), "offset 3");
        var dead = KafkaProbe.ReadAll(cluster.BootstrapServers, "dl-failed", 1, expected: 1, TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(calls, Is.EqualTo(new[] { "m0", "m1", "m1", "m1", "m2" }), "m1 is tried three times, then m2 goes on");
            Assert.That(dead, Has.Count.EqualTo(1));
            Assert.That(Encoding.UTF8.GetString(dead[0].Message.Value!), Is.EqualTo("m1"));
            Assert.That(Encoding.UTF8.GetString(dead[0].Message.Headers.GetLastBytes(DeadLetterPublisher.ExceptionTypeHeader)), Is.EqualTo(typeof(TimeoutException).FullName));
            Assert.That(Encoding.UTF8.GetString(dead[0].Message.Headers.GetLastBytes(DeadLetterPublisher.ExceptionMessageHeader)), Is.EqualTo("downstream timed out"));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
        });
    }

    /// <summary>
    /// Produces [ok1, bad, ok2] to a new one-partition <paramref name="topic"/> and consumes it (group
    /// <c>{topic}-group</c>) with <paramref name="onError"/> until ok1 and ok2 are handled and offset 3 is committed.
    /// </summary>
    /// <summary>
    /// A handler that throws before returning its task and one that throws after an await go through the same path:
    /// retried in place (<c>Retry.MaxRetryAttempts</c>), then <c>OnError</c> (Skip here), and the partition goes on.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task Handler_ThrowsSynchronouslyOrAsynchronously_BothRetriedThenOnErrorTheSameWay()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        cluster.CreateTopic("throws", partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, "throws", [
            new Message<string, string> { Key = "k", Value = "sync" },
            new Message<string, string> { Key = "k", Value = "async" },
            new Message<string, string> { Key = "k", Value = "ok" },
        ]);
        var options = ConsumerTestKit.Options(cluster, "throws-group", "throws");
        options.OnError = ConsumerErrorAction.Skip;
        options.Retry.MaxRetryAttempts = 2;
        options.Retry.BaseDelay = TimeSpan.FromMilliseconds(10);
        options.CommitInterval = TimeSpan.FromMilliseconds(200);
        var logs = new CapturingLoggerFactory();
        var calls = new ConcurrentQueue<string>();
        await using var consumer = new KafkaConsumerBuilder<string, string>("throws", options)
            .SetLoggerFactory(logs)
            .SetHandler((r, ct) =>
            {
                calls.Enqueue(r.Message.Value);
                return r.Message.Value switch
                {
                    "sync" => throw new InvalidOperationException("thrown synchronously"),
                    "async" => ThrowAfterAwaitAsync(ct),
                    _ => ValueTask.CompletedTask,
                };
            })
            .Build();

        await consumer.StartAsync();
        await ConsumerTestKit.WaitForCommittedAsync(cluster, "throws-group", "throws", 1, c => c[0] == 3, TimeSpan.FromSeconds(20), "offset 3");

        var failed = logs.Lines.Where(l => l.EventId.Id == 2008).Select(l => l.Message).ToList();
        var retries = logs.Lines.Where(l => l.EventId.Id == 2007).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(calls, Is.EqualTo(new[] { "sync", "sync", "sync", "async", "async", "async", "ok" }), "each failing message: one call and two retries");
            Assert.That(retries.Count(l => l.Message.EndsWith(": InvalidOperationException: thrown synchronously", StringComparison.Ordinal)), Is.EqualTo(2));
            Assert.That(retries.Count(l => l.Message.EndsWith(": InvalidOperationException: thrown after an await", StringComparison.Ordinal)), Is.EqualTo(2));
            Assert.That(retries.Select(l => l.Exception), Has.All.Null, "a retry line names the error; the stack trace is written once, with the outcome");
            Assert.That(logs.Lines.Where(l => l.EventId.Id == 2008).Select(l => l.Exception?.Message), Is.EqualTo(new[] { "thrown synchronously", "thrown after an await" }));
            Assert.That(failed, Has.Count.EqualTo(2));
            Assert.That(failed, Has.All.Contain("handler").And.Contain("Skip"));
            Assert.That(consumer.State, Is.EqualTo(KafkaConsumerState.Running));
        });
    }

    private static async ValueTask ThrowAfterAwaitAsync(CancellationToken cancellationToken)
    {
        await Task.Delay(1, cancellationToken);
        throw new InvalidOperationException("thrown after an await");
    }

    private static async Task<(KafkaConsumer<string, Order> Consumer, ConcurrentQueue<string> Orders, CapturingLoggerFactory Logs, Dictionary<int, long> Committed)> ConsumeOkBadOkAsync(
        EmbeddedKafkaCluster cluster, string topic, ConsumerErrorAction onError)
    {
        cluster.CreateTopic(topic, partitions: 1);
        KafkaProbe.Produce(cluster.BootstrapServers, topic, [
            new Message<string, string> { Key = "k", Value = "{\"id\":\"ok1\",\"amount\":1}" },
            new Message<string, string> { Key = "k-bad", Value = BadJson, Headers = new Headers { { "trace", Encoding.UTF8.GetBytes("t-1") } } },
            new Message<string, string> { Key = "k", Value = "{\"id\":\"ok2\",\"amount\":2}" },
        ]);
        var options = ConsumerTestKit.Options(cluster, topic + "-group", topic);
        options.OnError = onError;
        options.CommitInterval = TimeSpan.FromMilliseconds(500);
        var logs = new CapturingLoggerFactory();
        var orders = new ConcurrentQueue<string>();
        var consumer = new KafkaConsumerBuilder<string, Order>(topic, options)
            .SetLoggerFactory(logs)
            .SetHandler((r, _) =>
            {
                orders.Enqueue(r.Message.Value.Id);
                return ValueTask.CompletedTask;
            })
            .Build();

        await consumer.StartAsync();
        await Wait.ForAsync(() => orders.Count == 2, TimeSpan.FromSeconds(15), "ok1 and ok2 handled");
        var committed = await ConsumerTestKit.WaitForCommittedAsync(cluster, topic + "-group", topic, 1, c => c[0] == 3, TimeSpan.FromSeconds(10), "offset 3");
        return (consumer, orders, logs, committed);
    }

    /// <summary>A JSON message value.</summary>
    public sealed record Order(string Id, int Amount);
}
