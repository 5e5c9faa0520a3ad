namespace KafkaKit.Consuming;

/// <summary>
/// How a batch consumer (<see cref="IKafkaBatchHandler{TKey, TValue}"/>) forms its batches: <see cref="KafkaConsumerOptions.Batch"/>.
/// Ignored by a consumer with a per-message handler.
/// </summary>
/// <remarks>
/// A partition's next batch is formed when its previous batch finished. If messages are waiting in the partition's
/// buffer then, the batch is what is waiting, up to <see cref="MaxBatchSize"/>, handed over at once (no wait: the
/// messages already waited for the previous batch). If none is waiting, the batch starts with the next message to
/// arrive and is handed over when it holds <see cref="MaxBatchSize"/> messages or <see cref="MaxBatchWait"/> has passed
/// since that first message, whichever comes first. A batch still being formed counts as buffered
/// (<see cref="KafkaConsumerOptions.PartitionBufferSize"/>, <see cref="KafkaConsumerOptions.MaxBufferedBytes"/>).
/// </remarks>
public sealed class ConsumerBatchOptions
{
    /// <summary>The default of <see cref="MaxBatchSize"/>: 500 messages (Kafka's <c>max.poll.records</c> default).</summary>
    internal const int DefaultMaxBatchSize = 500;

    /// <summary>The default of <see cref="MaxBatchWait"/>: 100 ms.</summary>
    internal static readonly TimeSpan DefaultMaxBatchWait = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Gets or sets the most messages in one batch. Default: 500. Range 1 to 100,000, and at most
    /// <see cref="KafkaConsumerOptions.PartitionBufferSize"/> (a batch is formed in the partition's buffer).
    /// </summary>
    public int MaxBatchSize { get; set; } = DefaultMaxBatchSize;

    /// <summary>
    /// Gets or sets the longest a batch started from an empty buffer waits for more messages after its first one.
    /// Default: 100 ms. Range 0 (hand over what is there at once) to 5 minutes.
    /// </summary>
    public TimeSpan MaxBatchWait { get; set; } = DefaultMaxBatchWait;

    internal void Validate(List<string> problems)
    {
        if (MaxBatchSize is < 1 or > 100_000)
        {
            problems.Add($"Batch.MaxBatchSize is {MaxBatchSize}; it must be between 1 and 100000 messages.");
        }

        if (MaxBatchWait < TimeSpan.Zero || MaxBatchWait > TimeSpan.FromMinutes(5))
        {
            problems.Add($"Batch.MaxBatchWait is {MaxBatchWait}; it must be between 0 and 5 minutes.");
        }
    }

    /// <summary>Lists what a batch handler does not go with (the builder calls it when one is set).</summary>
    /// <param name="name">The consumer's name.</param>
    /// <param name="options">The consumer's options.</param>
    /// <param name="hasMessageHandler">Whether a message handler is set too.</param>
    /// <param name="problems">Receives one sentence per problem.</param>
    internal static void ValidateBatchConsumer(string name, KafkaConsumerOptions options, bool hasMessageHandler, List<string> problems)
    {
        if (hasMessageHandler)
        {
            problems.Add($"Consumer '{name}' has both a message handler and a batch handler: set one (SetHandler or SetBatchHandler).");
        }

        if (options.Ordering != ConsumerOrdering.Partition)
        {
            problems.Add($"Consumer '{name}': Ordering is {options.Ordering}, but a batch handler needs Ordering = Partition (a batch holds messages of one partition in offset order); remove Ordering or use a message handler.");
        }

        if (options.OnError == ConsumerErrorAction.RetryTopics)
        {
            problems.Add($"Consumer '{name}': OnError is RetryTopics, which a batch handler does not support (a retry record's offset completes on the broker's acknowledgement, one message at a time); use DeadLetter, Skip or Stop, or a message handler.");
        }

        if (options.Batch.MaxBatchSize > options.PartitionBufferSize)
        {
            problems.Add($"Consumer '{name}': Batch.MaxBatchSize ({options.Batch.MaxBatchSize}) is more than PartitionBufferSize ({options.PartitionBufferSize}); a batch is formed in the partition's buffer, so it must be at most PartitionBufferSize messages.");
        }
    }
}
