using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>Handles the messages of a KafkaKit consumer in batches (registered with <c>AddBatchConsumer</c> or <see cref="KafkaConsumerBuilder{TKey, TValue}.SetBatchHandler(IKafkaBatchHandler{TKey, TValue})"/>).</summary>
/// <typeparam name="TKey">The message key type.</typeparam>
/// <typeparam name="TValue">The message value type.</typeparam>
/// <remarks>
/// <para>
/// A batch holds messages of one partition in offset order, between 1 and <see cref="ConsumerBatchOptions.MaxBatchSize"/>
/// of them (see <see cref="KafkaConsumerOptions.Batch"/> for when a batch is handed over). Batches of one partition are
/// handled one at a time, in offset order; batches of different partitions concurrently, up to
/// <see cref="KafkaConsumerOptions.MaxConcurrency"/> calls at once. Calls run on thread-pool threads, never on the poll thread.
/// </para>
/// <para>
/// The offsets of a batch are committed only after its call completed: delivery is at least once, and after a crash, a
/// lost partition or a call cancelled at a revoke or stop the whole batch is delivered again. To fail one message only,
/// throw <see cref="KafkaBatchException"/> with its index: the messages before it are committed, the failed one is retried
/// alone and then goes to <see cref="KafkaConsumerOptions.OnError"/>, and the ones after it come again in the next batch.
/// Any other exception retries the whole batch (<see cref="KafkaConsumerOptions.Retry"/>) and then applies
/// <see cref="KafkaConsumerOptions.OnError"/> to every message of it. In DI, the handler is resolved from a new scope for every batch.
/// </para>
/// </remarks>
public interface IKafkaBatchHandler<TKey, TValue>
{
    /// <summary>Handles one batch.</summary>
    /// <param name="batch">The messages, of one partition, in offset order; never empty. The list is the handler's to keep.</param>
    /// <param name="cancellationToken">
    /// Cancelled when the consumer stops and the call outlives <see cref="KafkaConsumerOptions.ShutdownTimeout"/>, when
    /// its partition is revoked and it outlives <see cref="KafkaConsumerOptions.RevokeTimeout"/>, or when the partition is
    /// lost. Nothing of a cancelled batch is committed.
    /// </param>
    /// <returns>A task that completes when every message of the batch is handled.</returns>
    /// <exception cref="KafkaBatchException">Throw it to fail one message of the batch (see the remarks).</exception>
    ValueTask HandleAsync(IReadOnlyList<ConsumeResult<TKey, TValue>> batch, CancellationToken cancellationToken);
}
