using System.Diagnostics;
using Confluent.Kafka;

namespace KafkaKit.Tests.Testing;

/// <summary>Clients for tests that run against an embedded cluster.</summary>
internal static class EmbeddedClusterTestKit
{
    /// <summary>A producer with short reconnect backoffs (a broker set up again is reconnected within ~0.5 s).</summary>
    public static IProducer<string, string> CreateProducer(string bootstrapServers, Action<ProducerConfig>? configure = null)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            LingerMs = 0,
            ReconnectBackoffMs = 50,
            ReconnectBackoffMaxMs = 500,
            RetryBackoffMs = 50,
            RetryBackoffMaxMs = 200,
        };
        configure?.Invoke(config);
        return new ProducerBuilder<string, string>(config).SetLogHandler(static (_, _) => { }).Build();
    }

    /// <summary>
    /// A consumer with the group settings the embedded cluster needs (session.timeout.ms=6000, 500 ms heartbeats,
    /// see DESIGN.md "Embedded cluster") and short reconnect backoffs.
    /// </summary>
    public static IConsumer<string, string> CreateConsumer(
        string bootstrapServers,
        string groupId,
        Action<IConsumer<string, string>, List<TopicPartition>>? onAssigned = null)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = groupId,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            SessionTimeoutMs = 6000,
            HeartbeatIntervalMs = 500,
            ReconnectBackoffMs = 50,
            ReconnectBackoffMaxMs = 500,
        };
        var builder = new ConsumerBuilder<string, string>(config).SetLogHandler(static (_, _) => { });
        if (onAssigned is not null)
        {
            builder.SetPartitionsAssignedHandler(onAssigned);
        }

        return builder.Build();
    }

    /// <summary>
    /// Reads a partition from the beginning by assignment (no group join) until <paramref name="count"/> messages are
    /// read or <paramref name="timeout"/> passes.
    /// </summary>
    /// <returns>The values read, in offset order.</returns>
    public static List<string> ReadPartition(string bootstrapServers, string topic, int partition, int count, TimeSpan timeout)
    {
        using var consumer = CreateConsumer(bootstrapServers, $"reader-{Guid.NewGuid():N}");
        consumer.Assign(new TopicPartitionOffset(topic, partition, Offset.Beginning));
        var values = new List<string>();
        var elapsed = Stopwatch.StartNew();
        while (values.Count < count && elapsed.Elapsed < timeout)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(50));
            if (result is not null && !result.IsPartitionEOF)
            {
                values.Add(result.Message.Value);
            }
        }

        consumer.Close();
        return values;
    }

    /// <summary>Polls <paramref name="consumer"/> until it has an assignment or <paramref name="timeout"/> passes.</summary>
    /// <returns>The messages consumed while waiting.</returns>
    public static List<string> PollUntilAssigned(IConsumer<string, string> consumer, TimeSpan timeout)
    {
        var values = new List<string>();
        var elapsed = Stopwatch.StartNew();
        while (consumer.Assignment.Count == 0 && elapsed.Elapsed < timeout)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(50));
            if (result is not null && !result.IsPartitionEOF)
            {
                values.Add(result.Message.Value);
            }
        }

        return values;
    }

    /// <summary>Polls <paramref name="consumer"/> until <paramref name="count"/> messages arrived or the timeout passes.</summary>
    /// <returns>The results consumed.</returns>
    public static List<ConsumeResult<string, string>> ConsumeMessages(IConsumer<string, string> consumer, int count, TimeSpan timeout)
    {
        var results = new List<ConsumeResult<string, string>>();
        var elapsed = Stopwatch.StartNew();
        while (results.Count < count && elapsed.Elapsed < timeout)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(50));
            if (result is not null && !result.IsPartitionEOF)
            {
                results.Add(result);
            }
        }

        return results;
    }

    /// <summary>Reads the leader of a partition from cluster metadata.</summary>
    /// <returns>The leader's broker id, or -1 if the metadata could not be read.</returns>
    public static int GetLeader(IAdminClient admin, string topic, int partition)
    {
        try
        {
            var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(2));
            return metadata.Topics.Single().Partitions.Single(p => p.PartitionId == partition).Leader;
        }
        catch (KafkaException)
        {
            return -1;
        }
    }
}
