using System.Collections.Concurrent;
using Confluent.Kafka;
using KafkaKit.Sharing;
using KafkaKit.Testing;

namespace KafkaKit.Tests.Sharing;

/// <summary>Share-group helpers for tests on the embedded cluster.</summary>
internal static class ShareTestKit
{
    /// <summary>A cluster whose share groups read from the earliest record, heartbeat every 200 ms and notice a silent member after 6 s.</summary>
    public static EmbeddedKafkaCluster Cluster(TimeSpan? lockDuration = null, int? maxDeliveryAttempts = null)
    {
        var cluster = EmbeddedKafkaCluster.Start();
        cluster.ConfigureShareGroups(
            recordLockDuration: lockDuration ?? TimeSpan.FromSeconds(30),
            maxDeliveryAttempts: maxDeliveryAttempts,
            sessionTimeout: TimeSpan.FromSeconds(6),
            heartbeatInterval: TimeSpan.FromMilliseconds(200),
            readFromEarliest: true);
        return cluster;
    }

    public static KafkaShareConsumerOptions Options(EmbeddedKafkaCluster cluster, string group, string topic, int maxConcurrency = 16)
    {
        var options = new KafkaShareConsumerOptions { BootstrapServers = cluster.BootstrapServers, GroupId = group, MaxConcurrency = maxConcurrency, ShutdownTimeout = TimeSpan.FromSeconds(5) };
        options.Topics.Add(topic);
        return options;
    }

    /// <summary>
    /// A producer for a whole test: the embedded cluster closes every share session of a broker (and releases all their
    /// record locks) whenever any connection to that broker closes (rdkafka_mock_sharegrp.c,
    /// rd_kafka_mock_sharegrps_node_connection_closed), so a producer disposed while share consumers hold records
    /// causes redeliveries.
    /// </summary>
    public static IProducer<string, string> Producer(EmbeddedKafkaCluster cluster) =>
        new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers, LingerMs = 5 }).Build();

    /// <summary>The end offset (high watermark) of partition 0 of <paramref name="topic"/>: how many records were ever written to it.</summary>
    public static long EndOffset(EmbeddedKafkaCluster cluster, string topic)
    {
        using var reader = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "watermarks" }).Build();
        return reader.QueryWatermarkOffsets(new TopicPartition(topic, 0), TimeSpan.FromSeconds(10)).High.Value;
    }

    /// <summary>Produces values <c>{prefix}{i}</c> for i in [from, from + count), keyed by i.</summary>
    public static void Produce(IProducer<string, string> producer, string topic, int count, string prefix = "v", int from = 0)
    {
        for (var i = from; i < from + count; i++)
        {
            producer.Produce(topic, new Message<string, string> { Key = i.ToString(System.Globalization.CultureInfo.InvariantCulture), Value = prefix + i });
        }

        Assert.That(producer.Flush(TimeSpan.FromSeconds(30)), Is.Zero, "every record was produced");
    }
}

/// <summary>Who handled which value, and when.</summary>
internal sealed class ShareLedger
{
    public ConcurrentDictionary<string, int> Accepted { get; } = new();

    public ConcurrentDictionary<string, int> ByMember { get; } = new();

    public int Total => Accepted.Count;

    public void Record(string member, string value)
    {
        Accepted.AddOrUpdate(value, 1, (_, n) => n + 1);
        ByMember.AddOrUpdate(member, 1, (_, n) => n + 1);
    }
}
