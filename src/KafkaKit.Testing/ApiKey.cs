namespace KafkaKit.Testing;

/// <summary>
/// Kafka protocol request types, for <see cref="EmbeddedKafkaCluster.PushRequestErrors"/>. The numeric values are the
/// protocol's API keys (see the Kafka protocol guide).
/// </summary>
public enum ApiKey : short
{
    /// <summary>Produce (0): writes batches to a partition leader.</summary>
    Produce = 0,

    /// <summary>Fetch (1): reads from a partition leader.</summary>
    Fetch = 1,

    /// <summary>ListOffsets (2): resolves earliest/latest/timestamp offsets.</summary>
    ListOffsets = 2,

    /// <summary>Metadata (3): brokers, topics, partitions and leaders.</summary>
    Metadata = 3,

    /// <summary>OffsetCommit (8): a consumer group commits offsets.</summary>
    OffsetCommit = 8,

    /// <summary>OffsetFetch (9): a consumer group reads committed offsets.</summary>
    OffsetFetch = 9,

    /// <summary>FindCoordinator (10): locates the group or transaction coordinator.</summary>
    FindCoordinator = 10,

    /// <summary>JoinGroup (11): a member joins a consumer group (starts a rebalance).</summary>
    JoinGroup = 11,

    /// <summary>Heartbeat (12): a member keeps its group membership alive.</summary>
    Heartbeat = 12,

    /// <summary>LeaveGroup (13): a member leaves its consumer group.</summary>
    LeaveGroup = 13,

    /// <summary>SyncGroup (14): members receive their assignment.</summary>
    SyncGroup = 14,

    /// <summary>ApiVersions (18): version negotiation.</summary>
    ApiVersions = 18,

    /// <summary>InitProducerId (22): an idempotent or transactional producer gets its id and epoch.</summary>
    InitProducerId = 22,

    /// <summary>AddPartitionsToTxn (24): a transactional producer adds partitions to its open transaction.</summary>
    AddPartitionsToTxn = 24,

    /// <summary>AddOffsetsToTxn (25): a transactional producer adds a consumer group's offsets to its open transaction.</summary>
    AddOffsetsToTxn = 25,

    /// <summary>EndTxn (26): a transactional producer commits or aborts its transaction.</summary>
    EndTxn = 26,

    /// <summary>TxnOffsetCommit (28): a transactional producer commits consumer offsets to the group coordinator inside its transaction.</summary>
    TxnOffsetCommit = 28,
}
