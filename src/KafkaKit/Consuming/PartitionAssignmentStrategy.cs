namespace KafkaKit.Consuming;

/// <summary>The consumer group rebalance protocol (librdkafka <c>partition.assignment.strategy</c>).</summary>
public enum PartitionAssignmentStrategy
{
    /// <summary>
    /// Incremental cooperative rebalancing (KIP-429, <c>cooperative-sticky</c>): a rebalance revokes only the partitions
    /// that move, so the others keep being handled. The default.
    /// </summary>
    CooperativeSticky = 0,

    /// <summary>Eager rebalancing with the range assignor: every rebalance revokes every partition first.</summary>
    Range = 1,

    /// <summary>Eager rebalancing with the round-robin assignor.</summary>
    RoundRobin = 2,
}
