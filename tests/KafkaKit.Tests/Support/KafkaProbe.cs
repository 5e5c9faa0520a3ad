using Confluent.Kafka;

namespace KafkaKit.Tests.Support;

/// <summary>Reads cluster state with plain Confluent clients, independently of KafkaKit.</summary>
internal static class KafkaProbe
{
    /// <summary>Consumer settings that make the embedded cluster's group protocol fast (see the embedded cluster docs).</summary>
    public static void FastGroup(IDictionary<string, string> config)
    {
        config["session.timeout.ms"] = "6000";
        config["heartbeat.interval.ms"] = "500";
    }

    /// <summary>
    /// The consumer group protocol's (KIP-848) counterpart of <see cref="FastGroup"/>: there the broker owns the session
    /// timeout and heartbeat interval, so the embedded cluster gets the same 6 s and 500 ms.
    /// </summary>
    public static void FastConsumerGroups(KafkaKit.Testing.EmbeddedKafkaCluster cluster)
    {
        cluster.SetConsumerGroupSessionTimeout(TimeSpan.FromMilliseconds(6000));
        cluster.SetConsumerGroupHeartbeatInterval(TimeSpan.FromMilliseconds(500));
    }

    /// <summary>Gets a group's committed offsets for <paramref name="partitions"/> (Offset.Unset where none).</summary>
    public static Dictionary<int, long> Committed(string bootstrapServers, string groupId, string topic, int partitions)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
        }).Build();
        return consumer.Committed(Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)), TimeSpan.FromSeconds(10))
            .ToDictionary(c => c.Partition.Value, c => c.Offset.Value);
    }

    /// <summary>Gets each partition's high watermark (end offset).</summary>
    public static Dictionary<int, long> EndOffsets(string bootstrapServers, string topic, int partitions)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = "probe" }).Build();
        return Enumerable.Range(0, partitions).ToDictionary(
            p => p,
            p => consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10)).High.Value);
    }

    /// <summary>Reads every message of a topic from the beginning by assignment (no group), until <paramref name="expected"/> arrived or the timeout.</summary>
    public static List<ConsumeResult<byte[]?, byte[]?>> ReadAll(string bootstrapServers, string topic, int partitions, int expected, TimeSpan timeout)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "probe-reader",
            EnableAutoCommit = false,
        }).Build();
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var results = new List<ConsumeResult<byte[]?, byte[]?>>();
        var deadline = DateTime.UtcNow + timeout;
        while (results.Count < expected && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result is { IsPartitionEOF: false })
            {
                results.Add(result);
            }
        }

        return results;
    }

    /// <summary>Produces messages with a raw Confluent producer and waits for them to be delivered.</summary>
    public static void Produce(string bootstrapServers, string topic, IEnumerable<Message<string, string>> messages, int? partition = null)
    {
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrapServers }).Build();
        foreach (var message in messages)
        {
            if (partition is { } p)
            {
                producer.Produce(new TopicPartition(topic, p), message);
            }
            else
            {
                producer.Produce(topic, message);
            }
        }

        if (producer.Flush(TimeSpan.FromSeconds(30)) != 0)
        {
            throw new InvalidOperationException("Test messages were not delivered.");
        }
    }
}
