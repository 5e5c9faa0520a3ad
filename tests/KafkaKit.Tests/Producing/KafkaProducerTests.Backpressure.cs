using KafkaKit.Tests.Support;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Producing;
using KafkaKit.Testing;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>Backpressure: a full local queue is met by an asynchronous wait, never by Local_QueueFull (field case C1).</summary>
public sealed partial class KafkaProducerTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C1_EnqueueAsync_QueueLimit100AndLinger1s_WaitsWithoutExceptionAndDeliversAll(CancellationToken cancellationToken)
    {
        // Arrange
        const int count = 1_000;
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("c1-linger", partitions: 3);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, 3);
        var outcomes = new Outcomes();
        var exceptions = new List<Exception>();
        await using var producer = Build<Null, string>(Options(
            cluster.BootstrapServers, ("queue.buffering.max.messages", "100"), ("linger.ms", "1000")));

        // Act
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            try
            {
                await producer.EnqueueAsync(topic, new Message<Null, string> { Value = $"message-{i}" }, outcomes.Record, cancellationToken);
            }
            catch (KafkaException e)
            {
                exceptions.Add(e);
            }
        }

        var enqueueTime = clock.Elapsed;
        var undelivered = await producer.FlushAsync(cancellationToken);

        // Assert
        await TestContext.Out.WriteLineAsync($"enqueued {count} through a queue of 100 in {enqueueTime.TotalSeconds:F2} s");
        Assert.That(exceptions, Is.Empty, "no Local_QueueFull (or any error) reaches the caller");
        Assert.That(enqueueTime, Is.LessThan(TimeSpan.FromSeconds(2)), "a full queue sends at once when an enqueue starts waiting, instead of waiting out linger.ms (1 s) or a stall pulse (50 ms) for each of ~100 refills");
        Assert.That(undelivered, Is.Zero);
        Assert.That(outcomes.Total, Is.EqualTo(count), "delivered + failed outcomes = enqueued");
        Assert.That(outcomes.Delivered, Is.EqualTo(count), outcomes.ToString());
        Assert.That(await reader.ReadAsync(count, TimeSpan.FromSeconds(20), cancellationToken), Is.EqualTo(count));
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task Regression_C1_EnqueueAsync_TightLoopWhileLeaderBrokerDown_AcceptsAndDeliversAll(CancellationToken cancellationToken)
    {
        // Arrange: 3 brokers, broker 2 leads partitions 1 and 4 and is down while the producer runs at full speed.
        const int count = 200_000;
        const int partitions = 6;
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        var topic = cluster.NewTopic("c1-broker-down", partitions);
        for (var p = 0; p < partitions; p++)
        {
            cluster.SetPartitionLeader(topic, p, (p % 3) + 1);
        }

        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, partitions);
        var outcomes = new Outcomes();
        var exceptions = 0;
        var enqueued = 0;
        var name = NewName("c1-broker-down");
        await using var producer = Build<string, string>(Options(cluster.BootstrapServers), name: name);
        await producer.ProduceAsync(topic, new Message<string, string> { Key = "warm-up", Value = "0" }, cancellationToken);
        cluster.SetBrokerDown(2);
        var clock = Stopwatch.StartNew();

        // Act: enqueue in a tight loop; bring broker 2 back mid-stream.
        var produce = Task.Run(
            async () =>
            {
                for (var i = 0; i < count; i++)
                {
                    try
                    {
                        await producer.EnqueueAsync(topic, new Message<string, string> { Key = $"k{i % 600}", Value = "v" }, outcomes.Record, cancellationToken);
                        Volatile.Write(ref enqueued, i + 1);
                    }
                    catch (KafkaException)
                    {
                        Interlocked.Increment(ref exceptions);
                    }
                }
            },
            cancellationToken);
        await Wait.ForAsync(() => Volatile.Read(ref enqueued) >= count * 3 / 4, TimeSpan.FromSeconds(30), "Volatile.Read(ref enqueued) >= count * 3 / 4", cancellationToken);
        var queuedWhileDown = producer.QueuedMessages;
        cluster.SetBrokerUp(2);
        await produce;
        var enqueueTime = clock.Elapsed;
        var undelivered = await producer.FlushAsync(cancellationToken);
        var deliverTime = clock.Elapsed;

        // Assert
        await TestContext.Out.WriteLineAsync($"enqueued {count} in {enqueueTime.TotalSeconds:F2} s, all outcomes after {deliverTime.TotalSeconds:F2} s; {queuedWhileDown} queued when broker 2 came back");
        Assert.That(exceptions, Is.Zero, "every message is accepted");
        Assert.That(queuedWhileDown, Is.GreaterThan(count / 10), "the down broker's partitions held messages back");
        Assert.That(undelivered, Is.Zero);
        Assert.That(outcomes.Total, Is.EqualTo(count), "delivered + failed outcomes = enqueued");
        Assert.That(outcomes.Delivered, Is.EqualTo(count), outcomes.ToString());
        Assert.That(await reader.ReadAsync(count + 1, TimeSpan.FromSeconds(30), cancellationToken), Is.EqualTo(count + 1), "the warm-up message and every enqueued one");
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Regression_C1_EnqueueAsync_QueueStaysFullPastMaxBlock_ThrowsQueueFullAfterMaxBlock(CancellationToken cancellationToken)
    {
        // Arrange: no broker reachable, so nothing ever leaves the queue of 10.
        var maxBlock = TimeSpan.FromSeconds(1);
        var slice = TimeSpan.FromMilliseconds(100);
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("c1-max-block", partitions: 1);
        cluster.SetBrokerDown(1);
        var outcomes = new Outcomes();
        var options = Options(cluster.BootstrapServers, ("queue.buffering.max.messages", "10"));
        options.MaxBlock = maxBlock;
        options.FlushTimeoutOnDispose = TimeSpan.FromMilliseconds(200);
        var producer = Build<Null, string>(options);
        for (var i = 0; i < 10; i++)
        {
            await producer.EnqueueAsync(topic, new Message<Null, string> { Value = $"m{i}" }, outcomes.Record, cancellationToken);
        }

        // Act
        var clock = Stopwatch.StartNew();
        var full = Assert.ThrowsAsync<ProducerQueueFullException>(
            async () => await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "one too many" }, outcomes.Record, cancellationToken));
        var waited = clock.Elapsed;

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        clock.Restart();
        var cancelled = Assert.ThrowsAsync<OperationCanceledException>(
            async () => await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "cancelled" }, outcomes.Record, cancel.Token));
        var waitedForCancel = clock.Elapsed;

        await producer.DisposeAsync();

        // Assert
        await TestContext.Out.WriteLineAsync($"ProducerQueueFullException after {waited.TotalMilliseconds:F0} ms (MaxBlock {maxBlock.TotalMilliseconds} ms); cancelled after {waitedForCancel.TotalMilliseconds:F0} ms");
        Assert.That(waited, Is.InRange(maxBlock - slice, maxBlock + slice), "thrown after MaxBlock, within a poll slice");
        Assert.That(full!.Error.Code, Is.EqualTo(ErrorCode.Local_QueueFull));
        Assert.That(full.Waited, Is.InRange(maxBlock, maxBlock + slice));
        Assert.That(full.QueuedMessages, Is.EqualTo(10));
        Assert.That(full.Topic, Is.EqualTo(topic));
        Assert.That(cancelled!.CancellationToken, Is.EqualTo(cancel.Token), "the caller's own token");
        Assert.That(waitedForCancel, Is.LessThan(maxBlock), "cancellation ends the wait before MaxBlock");
        Assert.That(outcomes.Total, Is.EqualTo(10), "the 10 accepted messages get their outcome at dispose; the refused ones none");
        Assert.That(outcomes.Failed, Is.EqualTo(10), outcomes.ToString());
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task EnqueueAsync_BackpressureFailAndQueueFull_ThrowsAtOnceAndTryEnqueueReturnsFalse(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("fail-fast", partitions: 1);
        cluster.SetBrokerDown(1);
        var outcomes = new Outcomes();
        var options = Options(cluster.BootstrapServers, ("queue.buffering.max.messages", "5"));
        options.Backpressure = ProducerBackpressure.Fail;
        options.FlushTimeoutOnDispose = TimeSpan.Zero;
        var producer = Build<Null, string>(options);
        for (var i = 0; i < 5; i++)
        {
            Assert.That(producer.TryEnqueue(topic, new Message<Null, string> { Value = $"m{i}" }, outcomes.Record), Is.True);
        }

        // Act
        var clock = Stopwatch.StartNew();
        var full = Assert.ThrowsAsync<ProducerQueueFullException>(
            async () => await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "refused" }, outcomes.Record, cancellationToken));
        var waited = clock.Elapsed;
        var tried = producer.TryEnqueue(topic, new Message<Null, string> { Value = "refused too" }, outcomes.Record);
        var queued = producer.QueuedMessages;
        await producer.DisposeAsync();

        // Assert
        Assert.That(full!.Waited, Is.EqualTo(TimeSpan.Zero).Within(TimeSpan.FromMilliseconds(50)));
        Assert.That(waited, Is.LessThan(TimeSpan.FromMilliseconds(500)));
        Assert.That(tried, Is.False);
        Assert.That(queued, Is.EqualTo(5));
        Assert.That(outcomes.Total, Is.EqualTo(5), outcomes.ToString());
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task ProduceAsync_2000ConcurrentAwaitsThroughQueueOf50_EachGetsItsOwnResult(CancellationToken cancellationToken)
    {
        // Arrange: far more concurrent awaited produces than the queue holds, so most wait for room, and the pooled
        // delivery completions are reused many times over.
        const int count = 2_000;
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("awaited", partitions: 4);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, 4);
        await using var producer = Build<string, string>(Options(cluster.BootstrapServers, ("queue.buffering.max.messages", "50")));

        // Act
        var results = await Task.WhenAll(Enumerable.Range(0, count).Select(i =>
            producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i}", Value = $"v{i}" }, cancellationToken).AsTask()));

        // Assert
        Assert.That(results.Select(r => r.Message.Value), Is.EqualTo(Enumerable.Range(0, count).Select(i => $"v{i}")), "each await got its own message's result");
        Assert.That(results.Select(r => r.Status), Has.All.EqualTo(PersistenceStatus.Persisted));
        Assert.That(results.Select(r => r.TopicPartitionOffset).Distinct().Count(), Is.EqualTo(count), "distinct offsets");
        Assert.That(producer.QueuedMessages, Is.Zero);
        Assert.That(await reader.ReadAsync(count, TimeSpan.FromSeconds(20), cancellationToken), Is.EqualTo(count));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task ProduceAsync_TaskAwaitedTwice_SecondAwaitThrowsAndLaterCallsStillGetTheirOwnResults(CancellationToken cancellationToken)
    {
        // Arrange: the task is backed by a pooled completion; a second await must not hand that completion back to the
        // pool a second time (two later calls would then share one and get each other's results, or hang).
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("awaited-twice", partitions: 2);
        await using var producer = Build<string, string>(Options(cluster.BootstrapServers));
        var task = producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "first" }, cancellationToken);
        var first = await task;

        // Act
        var second = Assert.ThrowsAsync<InvalidOperationException>(async () => await task);
        var later = await Task.WhenAll(Enumerable.Range(0, 500).Select(i =>
            producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i}", Value = $"v{i}" }, cancellationToken).AsTask()))
            .WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);

        // Assert
        Assert.That(first.Message.Value, Is.EqualTo("first"));
        Assert.That(second!.Message, Does.Contain("awaited more than once"));
        Assert.That(later.Select(r => r.Message.Value), Is.EqualTo(Enumerable.Range(0, 500).Select(i => $"v{i}")), "each later call got its own message's result");
        Assert.That(later.Select(r => r.TopicPartitionOffset).Distinct().Count(), Is.EqualTo(500), "distinct offsets");
    }
}
