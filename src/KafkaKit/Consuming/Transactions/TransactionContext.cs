using Confluent.Kafka;
using KafkaKit.Serialization;

namespace KafkaKit.Consuming;

/// <summary>
/// The transaction a transactional handler call runs in (see <c>KafkaConsumerBuilder.SetTransactionalHandler</c> (<see cref="ITransactionalMessageHandler{TKey, TValue}"/>)):
/// messages produced through it are committed together with the consumed record's offset, or not at all.
/// </summary>
/// <remarks>
/// Valid only until the handler call returns; it may be used from any thread meanwhile. Keys and values are serialized
/// with <see cref="KafkaSerializers.SerializerFor{T}"/> (UTF-8 strings, big-endian primitives, raw <c>byte[]</c>,
/// JSON otherwise).
/// </remarks>
public sealed class TransactionContext
{
    private readonly TransactionCoordinator _coordinator;
    private int _produced;
    private volatile bool _closed;

    internal TransactionContext(TransactionCoordinator coordinator, long transaction)
    {
        _coordinator = coordinator;
        Transaction = transaction;
    }

    /// <summary>Gets how many messages this handler call produced so far.</summary>
    public int Produced => Volatile.Read(ref _produced);

    /// <summary>
    /// Produces a message into the current transaction. Completes once librdkafka has queued it; its delivery is confirmed
    /// by the transaction's commit (a failed delivery aborts the transaction, and the batch is handled again).
    /// </summary>
    /// <typeparam name="TOutKey">The key type.</typeparam>
    /// <typeparam name="TOutValue">The value type.</typeparam>
    /// <param name="topic">The output topic.</param>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Checked before producing.</param>
    /// <returns>A task that completes when the message is queued.</returns>
    /// <exception cref="ArgumentException"><paramref name="topic"/> is null or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="message"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The handler call this context belongs to has returned.</exception>
    /// <exception cref="ProduceException{TKey, TValue}">librdkafka refused the message (e.g. its queue is full, or the producer is fenced); a handler that fails after producing stops the consumer and its transaction is aborted.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask ProduceAsync<TOutKey, TOutValue>(string topic, Message<TOutKey, TOutValue> message, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(message);
        cancellationToken.ThrowIfCancellationRequested();
        if (_closed)
        {
            throw new InvalidOperationException($"The transaction context was used after its handler call returned; produce to '{topic}' inside the handler call.");
        }

        var raw = new Message<byte[]?, byte[]?>
        {
            Key = Serializers<TOutKey>.Instance.Serialize(message.Key, new SerializationContext(MessageComponentType.Key, topic, message.Headers)),
            Value = Serializers<TOutValue>.Instance.Serialize(message.Value, new SerializationContext(MessageComponentType.Value, topic, message.Headers)),
            Headers = message.Headers,
            Timestamp = message.Timestamp,
        };
        _coordinator.Produce(topic, raw);
        Interlocked.Increment(ref _produced);
        return default;
    }

    /// <summary>Gets the number of the transaction this call runs in (1 for the consumer's first), as logged.</summary>
    internal long Transaction { get; }

    internal void Close() => _closed = true;

    private static class Serializers<T>
    {
        public static readonly ISerializer<T> Instance = KafkaSerializers.SerializerFor<T>();
    }
}
