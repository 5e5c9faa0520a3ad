using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>
/// Handles consumed messages of an exactly-once consumer: what it produces through the <see cref="TransactionContext"/>
/// is committed together with the message's offset (see <see cref="ConsumerTransactionOptions"/>).
/// </summary>
/// <typeparam name="TKey">The message key type.</typeparam>
/// <typeparam name="TValue">The message value type.</typeparam>
public interface ITransactionalMessageHandler<TKey, TValue>
{
    /// <summary>
    /// Handles one message on a thread-pool thread; the messages of one partition are handled one at a time, in offset
    /// order. Produce the output with <paramref name="transaction"/> before returning; never after.
    /// </summary>
    /// <param name="result">The consumed message.</param>
    /// <param name="transaction">The transaction this call runs in.</param>
    /// <param name="cancellationToken">Cancelled when the partition is revoked or lost, or the stop's bound passes; the transaction is then aborted if the call had produced.</param>
    /// <returns>A task that completes when the message is handled.</returns>
    /// <remarks>
    /// An exception before anything was produced is a failure of the message (retried, then
    /// <see cref="KafkaConsumerOptions.OnError"/>); an exception after producing stops the consumer and the transaction
    /// is aborted, since its output cannot be taken back in part. A handler may be called again for a message whose
    /// transaction was aborted (its output was then never visible to read_committed readers).
    /// </remarks>
    ValueTask HandleAsync(ConsumeResult<TKey, TValue> result, TransactionContext transaction, CancellationToken cancellationToken);
}
