using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>The user's rebalance callbacks; each runs on the poll thread and must not block for long.</summary>
internal sealed class RebalanceCallbacks
{
    public Func<IReadOnlyList<TopicPartition>, IEnumerable<TopicPartitionOffset>?>? Assigned { get; set; }

    public Action<IReadOnlyList<TopicPartitionOffset>>? Revoked { get; set; }

    public Action<IReadOnlyList<TopicPartitionOffset>>? Lost { get; set; }
}
