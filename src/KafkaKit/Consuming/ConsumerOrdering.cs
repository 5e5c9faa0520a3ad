namespace KafkaKit.Consuming;

/// <summary>
/// Which messages of one partition a consumer may handle at the same time (<see cref="KafkaConsumerOptions.Ordering"/>).
/// The names follow Confluent's Parallel Consumer (<c>ProcessingOrder</c>: PARTITION, KEY, UNORDERED).
/// </summary>
/// <remarks>
/// <para>
/// In every mode a partition's committed offset is the offset after its highest handled message all of whose earlier
/// messages were handled too (dead-lettered and skipped messages count as handled): it never passes an unfinished
/// message. Delivery stays at least once; after a crash, a lost partition or a handler cancelled at a revoke or stop, the
/// partition's next owner receives again every message from the committed offset on. With <see cref="Key"/> and
/// <see cref="Unordered"/> that can include messages handled after the unfinished one (more duplicates than with
/// <see cref="Partition"/>, at most the messages fetched but not committed for that partition).
/// </para>
/// <para>
/// <see cref="KafkaConsumerOptions.MaxConcurrency"/> bounds the handler calls in flight over all partitions in every
/// mode; with <see cref="Key"/> and <see cref="Unordered"/> it also bounds the keys (or messages) in flight per partition.
/// Memory stays bounded per partition by <see cref="KafkaConsumerOptions.PartitionBufferSize"/> and
/// <see cref="KafkaConsumerOptions.MaxBufferedBytes"/>: a fetched message counts as buffered until its handler call starts.
/// </para>
/// </remarks>
public enum ConsumerOrdering
{
    /// <summary>
    /// One message of a partition at a time, in offset order; different partitions concurrently. A failed message
    /// retried in place holds its whole partition. The default.
    /// </summary>
    Partition = 0,

    /// <summary>
    /// Messages of one partition with the same key (compared byte for byte, before deserialization) one at a time in
    /// offset order; different keys concurrently. Messages without a key (null) form one key of their own: they are
    /// handled one at a time in offset order among themselves. A failed message retried in place holds only its key.
    /// </summary>
    Key = 1,

    /// <summary>
    /// Any messages of a partition concurrently, in no guaranteed order (they start in offset order). A failed message
    /// retried in place holds only itself. For handlers whose effects do not depend on order (idempotent writes keyed by
    /// something other than the message order).
    /// </summary>
    Unordered = 2,
}
