using KafkaKit.Tests.Support;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Testing;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>Shutdown: dispose flushes (bounded) and gives every message an outcome; flush does not wait out linger (C3).</summary>
public sealed partial class KafkaProducerTests
{
    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C3_DisposeAsync_RightAfterOneEnqueue100Times_AllMessagesReadBack(CancellationToken cancellationToken)
    {
        // Arrange
        const int rounds = 100;
        const int concurrency = 10;
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("c3-dispose", partitions: 3);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, 3);
        var outcomes = new Outcomes();
        var clock = Stopwatch.StartNew();

        // Act: create, enqueue one, dispose at once; 100 times. Each round takes ~150 ms (up to ~1 s when librdkafka's
        // idempotent producer retries its producer-id request on its 500 ms timer), so 10 rounds run at a time.
        await Parallel.ForAsync(0, rounds, new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken }, async (i, ct) =>
        {
            var producer = Build<string, string>(Options(cluster.BootstrapServers));
            await producer.EnqueueAsync(topic, new Message<string, string> { Key = $"key-{i}", Value = $"value-{i}" }, outcomes.Record, ct);
            await producer.DisposeAsync();
        });
        var elapsed = clock.Elapsed;

        // Assert
        await TestContext.Out.WriteLineAsync($"{rounds} create/enqueue/dispose rounds ({concurrency} at a time) in {elapsed.TotalSeconds:F2} s");
        Assert.That(outcomes.Delivered, Is.EqualTo(rounds), outcomes.ToString());
        Assert.That(await reader.ReadAsync(rounds, TimeSpan.FromSeconds(20), cancellationToken), Is.EqualTo(rounds));
    }

    [Test]
    [CancelAfter(60_000)]
    public async Task Regression_C3_DisposeAsync_AllBrokersDown100Times_ReportsEveryMessageFailed(CancellationToken cancellationToken)
    {
        // Arrange: every broker down; a short flush timeout, after which dispose purges and reports.
        const int rounds = 100;
        const int concurrency = 10;
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        var topic = cluster.NewTopic("c3-down", partitions: 3);
        for (var broker = 1; broker <= cluster.BrokerCount; broker++)
        {
            cluster.SetBrokerDown(broker);
        }

        var outcomes = new Outcomes();
        var clock = Stopwatch.StartNew();

        // Act: 100 rounds of create, enqueue one, dispose at once (10 rounds at a time, to keep the test short).
        await Parallel.ForAsync(0, rounds, new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken }, async (i, ct) =>
        {
            var options = Options(cluster.BootstrapServers);
            options.FlushTimeoutOnDispose = TimeSpan.FromMilliseconds(100);
            var producer = Build<string, string>(options);
            await producer.EnqueueAsync(topic, new Message<string, string> { Key = $"key-{i}", Value = $"value-{i}" }, outcomes.Record, ct);
            await producer.DisposeAsync();
        });
        var elapsed = clock.Elapsed;

        // Assert
        await TestContext.Out.WriteLineAsync($"{rounds} rounds in {elapsed.TotalSeconds:F2} s; outcomes: {outcomes}");
        Assert.That(outcomes.Total, Is.EqualTo(rounds), "one outcome per message, none lost at dispose");
        Assert.That(outcomes.Failed, Is.EqualTo(rounds), outcomes.ToString());
        Assert.That(
            outcomes.ByCode.Keys,
            Is.SubsetOf(new[] { ErrorCode.Local_PurgeQueue, ErrorCode.Local_PurgeInflight, ErrorCode.Local_MsgTimedOut }),
            outcomes.ToString());
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Regression_C3_FlushAsync_Linger20s_ReturnsZeroWellBeforeLinger(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("c3-linger", partitions: 3);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, 3);
        var outcomes = new Outcomes();
        await using var producer = Build<Null, string>(Options(cluster.BootstrapServers, ("linger.ms", "20000")));
        await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "lingering" }, outcomes.Record, cancellationToken);

        // Act
        var clock = Stopwatch.StartNew();
        var undelivered = await producer.FlushAsync(cancellationToken);
        var elapsed = clock.Elapsed;

        // Assert
        await TestContext.Out.WriteLineAsync($"FlushAsync returned {undelivered} after {elapsed.TotalMilliseconds:F0} ms (linger.ms=20000)");
        Assert.That(undelivered, Is.Zero);
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "flush sends lingering batches at once");
        Assert.That(outcomes.Delivered, Is.EqualTo(1), outcomes.ToString());
        Assert.That(await reader.ReadAsync(1, TimeSpan.FromSeconds(10), cancellationToken), Is.EqualTo(1));
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task Flush_Linger20s_ReturnsZeroWellBeforeLinger(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("flush-sync", partitions: 1);
        var outcomes = new Outcomes();
        await using var producer = Build<Null, string>(Options(cluster.BootstrapServers, ("linger.ms", "20000")));
        await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "lingering" }, outcomes.Record, cancellationToken);

        // Act
        var clock = Stopwatch.StartNew();
        var undelivered = producer.Flush(TimeSpan.FromSeconds(10));
        var elapsed = clock.Elapsed;

        // Assert
        Assert.That(undelivered, Is.Zero);
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        Assert.That(outcomes.Delivered, Is.EqualTo(1), outcomes.ToString());
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task FlushAsync_CancelledWhileBrokersDown_ThrowsOperationCanceledAndKeepsMessagesQueued(CancellationToken cancellationToken)
    {
        // Arrange
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("flush-cancel", partitions: 1);
        cluster.SetBrokerDown(1);
        var outcomes = new Outcomes();
        var options = Options(cluster.BootstrapServers);
        options.FlushTimeoutOnDispose = TimeSpan.Zero;
        var producer = Build<Null, string>(options);
        await producer.EnqueueAsync(topic, new Message<Null, string> { Value = "stuck" }, outcomes.Record, cancellationToken);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        // Act
        var clock = Stopwatch.StartNew();
        Assert.CatchAsync<OperationCanceledException>(async () => await producer.FlushAsync(cancel.Token));
        var elapsed = clock.Elapsed;
        var queued = producer.QueuedMessages;
        await producer.DisposeAsync();

        // Assert
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(2)), "cancellation ends the flush within a slice");
        Assert.That(queued, Is.EqualTo(1));
        Assert.That(outcomes.Failed, Is.EqualTo(1), "the message still gets its outcome, at dispose");
    }

    [Test]
    [CancelAfter(30_000)]
    public async Task DisposeAsync_WhileEnqueuesRace_EveryAcceptedMessageGetsOneOutcome(CancellationToken cancellationToken)
    {
        // Arrange: several writers enqueue while the producer is disposed under them (12 partitions keep the up to
        // 800,000 small messages far below the embedded cluster's per-partition retention).
        const int partitions = 12;
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("dispose-race", partitions);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, partitions);
        var outcomes = new Outcomes();
        var accepted = 0L;
        var refused = 0L;
        var producer = Build<Null, string>(Options(cluster.BootstrapServers));
        using var go = new ManualResetEventSlim();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(
            async () =>
            {
                go.Wait(cancellationToken);
                for (var i = 0; i < 200_000; i++)
                {
                    try
                    {
                        await producer.EnqueueAsync(topic, new Message<Null, string> { Value = $"{w}-{i}" }, outcomes.Record, cancellationToken);
                        Interlocked.Increment(ref accepted);
                    }
                    catch (ObjectDisposedException)
                    {
                        Interlocked.Increment(ref refused);
                        return;
                    }
                }
            },
            cancellationToken)).ToArray();

        // Act
        go.Set();
        await Wait.ForAsync(() => Interlocked.Read(ref accepted) >= 20_000, TimeSpan.FromSeconds(10), "Interlocked.Read(ref accepted) >= 20_000", cancellationToken);
        await producer.DisposeAsync();
        await Task.WhenAll(writers);

        // Assert
        await TestContext.Out.WriteLineAsync($"accepted {accepted}, refused after dispose {refused}; outcomes {outcomes}");
        Assert.That(outcomes.Total, Is.EqualTo(Interlocked.Read(ref accepted)), "every accepted message has exactly one outcome");
        Assert.That(outcomes.Delivered, Is.EqualTo(Interlocked.Read(ref accepted)), outcomes.ToString());
        Assert.That(await reader.ReadAsync(accepted, TimeSpan.FromSeconds(20), cancellationToken), Is.EqualTo(accepted));
    }
}
