using System.Collections.Concurrent;
using Confluent.Kafka;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Testing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.Consuming;

[TestFixture]
public sealed class KafkaConsumerTests
{
    private static KafkaConsumerOptions Options(EmbeddedKafkaCluster cluster, string group, params string[] topics)
    {
        var options = new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, GroupId = group };
        foreach (var topic in topics)
        {
            options.Topics.Add(topic);
        }

        KafkaProbe.FastGroup(options.Config);
        return options;
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task EndToEnd_TwoMembersTenThousandKeyedMessages_AllHandledInOrderAndCommittedAtEnd()
    {
        await using var cluster = EmbeddedKafkaCluster.Start(brokers: 3);
        cluster.CreateTopic("e2e", partitions: 6, replicationFactor: 3);
        const int count = 10_000;

        var producerOptions = new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers };
        await using (var producer = new KafkaProducerBuilder<string, string>("e2e-producer", producerOptions).Build())
        {
            for (var i = 0; i < count; i++)
            {
                await producer.EnqueueAsync("e2e", new Message<string, string> { Key = $"key-{i % 100}", Value = i.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            }

            Assert.That(await producer.FlushAsync(), Is.Zero);
        }

        var handled = new ConcurrentDictionary<long, int>();
        var lastOffset = new ConcurrentDictionary<int, long>();
        var orderViolations = 0;
        var handledCount = 0;
        ValueTask Handle(ConsumeResult<string, string> result, CancellationToken ct)
        {
            var previous = lastOffset.GetValueOrDefault(result.Partition.Value, -1);
            if (result.Offset.Value <= previous)
            {
                Interlocked.Increment(ref orderViolations);
            }

            lastOffset[result.Partition.Value] = result.Offset.Value;
            handled.AddOrUpdate(long.Parse(result.Message.Value, System.Globalization.CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
            Interlocked.Increment(ref handledCount);
            return ValueTask.CompletedTask;
        }

        var a = new KafkaConsumerBuilder<string, string>("e2e-a", Options(cluster, "e2e-group", "e2e")).SetHandler(Handle).Build();
        var b = new KafkaConsumerBuilder<string, string>("e2e-b", Options(cluster, "e2e-group", "e2e")).SetHandler(Handle).Build();
        await a.StartAsync();
        await b.StartAsync();

        await Wait.ForAsync(() => handled.Count == count, TimeSpan.FromSeconds(60), $"{count} distinct messages handled (have {handled.Count})");
        await a.StopAsync();
        await b.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(handled, Has.Count.EqualTo(count));
            Assert.That(orderViolations, Is.Zero, "per-partition offsets must be handled in increasing order");
            Assert.That(a.State, Is.EqualTo(KafkaConsumerState.Stopped));
            Assert.That(b.State, Is.EqualTo(KafkaConsumerState.Stopped));
        });
        var committed = KafkaProbe.Committed(cluster.BootstrapServers, "e2e-group", "e2e", 6);
        var ends = KafkaProbe.EndOffsets(cluster.BootstrapServers, "e2e", 6);
        Assert.That(committed, Is.EqualTo(ends), $"after stop the committed offsets equal the end offsets: committed {string.Join(",", committed)} ends {string.Join(",", ends)}; commit failures a={a.CommitFailures} b={b.CommitFailures}");
        TestContext.Out.WriteLine($"handled {handledCount} calls for {count} messages (re-deliveries {handledCount - count})");
    }
}
