using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>Handles the messages of a KafkaKit consumer.</summary>
/// <typeparam name="TKey">The message key type.</typeparam>
/// <typeparam name="TValue">The message value type.</typeparam>
/// <remarks>
/// Calls run on thread-pool threads, never on the poll thread. Messages of one partition are handled one at a time in
/// offset order (by default; per key or in any order with <see cref="KafkaConsumerOptions.Ordering"/>); different
/// partitions are handled concurrently, up to <see cref="KafkaConsumerOptions.MaxConcurrency"/> calls at once.
/// A message's offset is committed only after its call completed successfully (or its failure was dead-lettered or
/// skipped per <see cref="KafkaConsumerOptions.OnError"/>), so delivery is at least once: after a crash or a lost
/// partition a message can be handled again. In DI, the handler is resolved from a new scope for every message.
/// </remarks>
public interface IKafkaMessageHandler<TKey, TValue>
{
    /// <summary>Handles one message.</summary>
    /// <param name="result">The message with its topic, partition and offset.</param>
    /// <param name="cancellationToken">
    /// Cancelled when the consumer stops and the handler outlives <see cref="KafkaConsumerOptions.ShutdownTimeout"/>, when
    /// its partition is revoked and it outlives <see cref="KafkaConsumerOptions.RevokeTimeout"/>, or when the partition is
    /// lost. A cancelled call's offset is not committed.
    /// </param>
    /// <returns>A task that completes when the message is handled.</returns>
    ValueTask HandleAsync(ConsumeResult<TKey, TValue> result, CancellationToken cancellationToken);
}
