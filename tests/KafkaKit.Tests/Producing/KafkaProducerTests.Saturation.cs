using System.Diagnostics;
using Confluent.Kafka;
using KafkaKit.Testing;
using static KafkaKit.Tests.Producing.ProducerTestKit;

namespace KafkaKit.Tests.Producing;

/// <summary>Saturation: a producer far faster than the cluster, throttled by backpressure alone.</summary>
public sealed partial class KafkaProducerTests
{
    /// <remarks>Runs in ~7 s on 2 cores (~435,000 msg/s produced, ~200,000 msg/s read back), so it is not marked slow.</remarks>
    [Test]
    [CancelAfter(120_000)]
    public async Task EnqueueAsync_1MillionMessagesThroughQueueOf10000_NoExceptionAllDeliveredAndReadBack(CancellationToken cancellationToken)
    {
        // Arrange: 12 partitions and 8-byte values keep every partition far below the embedded cluster's retention
        // (~100,000 message sets / ~5 MB per partition); the reader counts from the earliest offset while producing.
        const int count = 1_000_000;
        const int partitions = 12;
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = cluster.NewTopic("saturation", partitions);
        await using var reader = new TopicReader<Ignore, Ignore>(cluster.BootstrapServers, topic, partitions);
        var outcomes = new Outcomes();
        var order = new DeliveryOrderProbe(partitions);
        Action<DeliveryReport<Null, long>> record = r =>
        {
            outcomes.Record(r);
            order.Observe(r);
        };
        var exceptions = 0;
        var maxQueued = 0L;
        await using var producer = Build<Null, long>(Options(cluster.BootstrapServers, ("queue.buffering.max.messages", "10000")));

        // Act
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            try
            {
                await producer.EnqueueAsync(topic, new Message<Null, long> { Value = i }, record, cancellationToken);
            }
            catch (KafkaException)
            {
                exceptions++;
            }

            if ((i & 0x3FF) == 0)
            {
                maxQueued = Math.Max(maxQueued, producer.QueuedMessages);
            }
        }

        var enqueueTime = clock.Elapsed;
        var undelivered = await producer.FlushAsync(cancellationToken);
        var deliverTime = clock.Elapsed;
        var readBack = await reader.ReadAsync(count, TimeSpan.FromSeconds(60), cancellationToken);
        var readTime = clock.Elapsed;

        // Assert
        await TestContext.Out.WriteLineAsync(
            $"{count:N0} messages: enqueued in {enqueueTime.TotalSeconds:F2} s, all outcomes after {deliverTime.TotalSeconds:F2} s " +
            $"({count / deliverTime.TotalSeconds:N0} msg/s), read back after {readTime.TotalSeconds:F2} s; most queued seen {maxQueued:N0}; {order}");
        Assert.That(exceptions, Is.Zero);
        Assert.That(maxQueued, Is.LessThanOrEqualTo(10_000), "the queue limit holds");
        Assert.That(undelivered, Is.Zero);
        Assert.That(outcomes.Total, Is.EqualTo(count), "delivered + failed outcomes = enqueued");
        Assert.That(outcomes.Delivered, Is.EqualTo(count), outcomes.ToString());
        Assert.That(readBack, Is.EqualTo(count));
        Assert.That(order.Threads, Is.EqualTo(1), "every callback ran on the producer's one delivery thread");
        Assert.That(order.Overlaps, Is.Zero, "callbacks never ran concurrently");
        Assert.That(order.OutOfOrder, Is.Zero, "per partition, outcomes arrived in offset order");
    }
}
