using KafkaKit.Tests.Support;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Testing;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>A partition leader's broker goes down mid-stream while requests are in flight.</summary>
public sealed partial class KafkaProducerTests
{
    [Test]
    [CancelAfter(90_000)]
    public async Task EnqueueAsync_LeaderBrokerDown5sMidStreamWithRtt_NoLossAndFirstOccurrencesInKeyOrder(CancellationToken cancellationToken)
    {
        // Arrange: 3 brokers with 50, 75 and 100 ms round trips (so produce requests are in flight at the fault); broker 1
        // leads partitions 0 and 3. Every key carries its own sequence number in the value.
        const int partitions = 6;
        const int keys = 24;
        var outage = TimeSpan.FromSeconds(5);
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        var topic = cluster.NewTopic("outage", partitions);
        for (var p = 0; p < partitions; p++)
        {
            cluster.SetPartitionLeader(topic, p, (p % 3) + 1);
        }

        for (var broker = 1; broker <= 3; broker++)
        {
            cluster.SetBrokerRoundTripTime(broker, TimeSpan.FromMilliseconds(25 + (25 * broker)));
        }

        await using var reader = new TopicReader<string, long>(cluster.BootstrapServers, topic, partitions, keepRecords: true);
        var outcomes = new Outcomes();
        var order = new DeliveryOrderProbe(partitions);
        Action<DeliveryReport<string, long>> record = r =>
        {
            outcomes.Record(r);
            order.Observe(r);
        };
        var next = new long[keys];
        var sent = 0L;
        await using var producer = Build<string, long>(Options(cluster.BootstrapServers));
        using var stopStream = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // The stream: one message per key every 5 ms (~4,800 msg/s), until told to stop.
        var stream = Task.Run(
            async () =>
            {
                using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(5));
                try
                {
                    while (await pace.WaitForNextTickAsync(stopStream.Token))
                    {
                        for (var k = 0; k < keys; k++)
                        {
                            await producer.EnqueueAsync(topic, new Message<string, long> { Key = $"key-{k}", Value = next[k]++ }, record, cancellationToken);
                            Interlocked.Increment(ref sent);
                        }
                    }
                }
                catch (OperationCanceledException) when (stopStream.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                }
            },
            cancellationToken);

        // Act: broker 1 down for 5 s once the stream is flowing, then up; the stream goes on until well after.
        await Wait.ForAsync(() => outcomes.Delivered >= 3_000, TimeSpan.FromSeconds(20), () => outcomes.ToString(), cancellationToken);
        cluster.SetBrokerDown(1);
        var down = Stopwatch.StartNew();
        var sentAtDown = Interlocked.Read(ref sent);
        await Wait.ForAsync(() => down.Elapsed >= outage, outage + TimeSpan.FromSeconds(5), "down.Elapsed >= outage", cancellationToken);
        var queuedAtUp = producer.QueuedMessages;
        cluster.SetBrokerUp(1);
        var sentAtUp = Interlocked.Read(ref sent);
        await Wait.ForAsync(() => outcomes.Delivered >= sentAtUp, TimeSpan.FromSeconds(40), () => $"{outcomes} of {sentAtUp}", cancellationToken);
        var recovered = down.Elapsed - outage;
        await stopStream.CancelAsync();
        await stream;
        var undelivered = await producer.FlushAsync(cancellationToken);
        var total = Interlocked.Read(ref sent);
        var readBack = await reader.ReadAsync(total, TimeSpan.FromSeconds(30), cancellationToken);

        // Assert: no loss; per key, the first occurrences are 0, 1, 2, ... in offset order; duplicates are counted.
        var (duplicates, outOfOrder) = CheckKeyedSequences(reader.Records, next);

        await TestContext.Out.WriteLineAsync(
            $"sent {total:N0} ({sentAtDown:N0} before the outage, {sentAtUp - sentAtDown:N0} during it, {queuedAtUp:N0} queued when the broker came back); " +
            $"all delivered {recovered.TotalSeconds:F1} s after; read back {readBack:N0}, duplicates {duplicates:N0}; {order}");
        Assert.That(undelivered, Is.Zero);
        Assert.That(sentAtUp - sentAtDown, Is.GreaterThan(1_000), "the stream went on during the outage");
        Assert.That(outcomes.Failed, Is.Zero, outcomes.ToString());
        Assert.That(outcomes.Delivered, Is.EqualTo(total), "one delivered outcome per message");
        Assert.That(reader.Records.Select(r => r.Message.Key).Distinct().Count(), Is.EqualTo(keys));
        Assert.That(outOfOrder, Is.Empty, "no loss, and first occurrences in strictly increasing per-key order");
        Assert.That(readBack, Is.EqualTo(total + duplicates));
        Assert.That(order.Overlaps, Is.Zero, "callbacks never ran concurrently");
    }
}
