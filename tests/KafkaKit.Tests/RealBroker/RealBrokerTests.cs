using System.Collections.Concurrent;
using System.Globalization;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaKit.Consuming;
using KafkaKit.Producing;
using KafkaKit.Tests.Support;

namespace KafkaKit.Tests.RealBroker;

/// <summary>The end-to-end scenarios on a real broker, where idempotence is enforced (no duplicates allowed).</summary>
[TestFixture]
[Category("RealBroker")]
public sealed class RealBrokerTests
{
    [Test]
    [CancelAfter(180_000)]
    public async Task EndToEnd_KeyedMessagesThroughProducerAndGroup_AllHandledOnceInOrderAndCommitted()
    {
        var servers = RealBrokerCluster.Require();
        var topic = "kafkakit-it-" + Guid.NewGuid().ToString("N")[..8];
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = servers }).Build())
        {
            await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = 6, ReplicationFactor = -1 }]);
        }

        const int count = 10_000;
        await using (var producer = new KafkaProducerBuilder<string, string>("it-producer", new KafkaProducerOptions { BootstrapServers = servers }).Build())
        {
            for (var i = 0; i < count; i++)
            {
                await producer.EnqueueAsync(topic, new Message<string, string> { Key = $"key-{i % 50}", Value = i.ToString(CultureInfo.InvariantCulture) });
            }

            Assert.That(await producer.FlushAsync(), Is.Zero);
        }

        var handled = new ConcurrentDictionary<int, int>();
        var options = new KafkaConsumerOptions { BootstrapServers = servers, GroupId = topic + "-group", Topics = { topic } };
        var consumer = new KafkaConsumerBuilder<string, string>("it-consumer", options)
            .SetHandler((result, _) =>
            {
                handled.AddOrUpdate(int.Parse(result.Message.Value, CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
                return ValueTask.CompletedTask;
            })
            .Build();
        await consumer.StartAsync();
        await Wait.ForAsync(() => handled.Count == count, TimeSpan.FromSeconds(120), $"{count} messages handled");
        await consumer.StopAsync();

        Assert.That(handled.Values.Count(n => n > 1), Is.Zero, "a real broker enforces idempotence and a clean run re-delivers nothing");
        Assert.That(KafkaProbe.Committed(servers, topic + "-group", topic, 6), Is.EqualTo(KafkaProbe.EndOffsets(servers, topic, 6)));
    }
}
