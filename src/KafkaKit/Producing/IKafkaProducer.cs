using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>
/// A Kafka producer with queue-full backpressure, delivery outcomes for every message and retries. Thread-safe: share
/// one instance per application (it is a singleton in DI).
/// </summary>
/// <typeparam name="TKey">The message key type.</typeparam>
/// <typeparam name="TValue">The message value type.</typeparam>
/// <remarks>
/// Every message accepted by <see cref="EnqueueAsync"/>, <see cref="TryEnqueue"/> or <see cref="ProduceAsync"/> gets
/// exactly one outcome: delivered, or failed with an error (also when the producer is disposed before delivery: the
/// message is then purged and reported failed). Outcomes of messages enqueued without a callback that fail go to the
/// producer's delivery-failed handler and log.
/// <para>
/// Threading: each producer serves librdkafka's delivery reports on one dedicated thread of its own, so delivery
/// callbacks never run concurrently and the outcomes of one partition arrive in offset order. While an enqueue waits for
/// room, that thread flushes, so a full queue sends at once instead of waiting out <c>linger.ms</c> (as the Java client
/// does when producers are blocked on buffer memory).
/// </para>
/// </remarks>
public interface IKafkaProducer<TKey, TValue> : IAsyncDisposable
{
    /// <summary>Gets the client name (librdkafka <c>client.id</c>).</summary>
    string Name { get; }

    /// <summary>Gets the number of messages handed to librdkafka and not yet reported (the local queue depth).</summary>
    long QueuedMessages { get; }

    /// <summary>Gets the fatal error that faulted this producer, or <see langword="null"/> while it is usable.</summary>
    Error? FatalError { get; }

    /// <summary>
    /// Hands a message to librdkafka without waiting for the broker's acknowledgement. Completes synchronously (no task is
    /// allocated) when the local queue has room; otherwise applies the producer's <see cref="ProducerBackpressure"/>.
    /// The local queue is bounded by <c>queue.buffering.max.messages</c> and <c>queue.buffering.max.kbytes</c>.
    /// </summary>
    /// <param name="topic">The topic.</param>
    /// <param name="message">The message (key, value, headers, timestamp).</param>
    /// <param name="onDelivery">
    /// Called once with the message's outcome, on the producer's delivery-report thread, one callback at a time (keep it
    /// short; never block on the producer from it). An exception it throws is logged and counted
    /// (<c>kafkakit.producer.callback.errors</c>) and does not stop later deliveries. Optional.
    /// </param>
    /// <param name="cancellationToken">Ends a wait for room.</param>
    /// <returns>A task that completes once librdkafka accepted the message into its local queue.</returns>
    /// <exception cref="ArgumentException"><paramref name="topic"/> is null or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="message"/> is null.</exception>
    /// <exception cref="ProduceException{TKey, TValue}">The key or value could not be serialized, or librdkafka refused the message (for example larger than <c>message.max.bytes</c>). Nothing was enqueued.</exception>
    /// <exception cref="ProducerQueueFullException">The queue stayed full (at once with <see cref="ProducerBackpressure.Fail"/>, after <see cref="KafkaProducerOptions.MaxBlock"/> with <see cref="ProducerBackpressure.Wait"/>).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while waiting for room.</exception>
    /// <exception cref="ProducerFaultedException">The producer hit a fatal error earlier.</exception>
    /// <exception cref="ObjectDisposedException">The producer was disposed.</exception>
    ValueTask EnqueueAsync(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>>? onDelivery = null, CancellationToken cancellationToken = default);

    /// <summary>Hands a message to librdkafka if its local queue has room; never waits.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="message">The message.</param>
    /// <param name="onDelivery">As for <see cref="EnqueueAsync"/>. Optional.</param>
    /// <returns><see langword="true"/> when enqueued; <see langword="false"/> when the queue is full (the message was not enqueued and gets no outcome).</returns>
    /// <exception cref="ArgumentException"><paramref name="topic"/> is null or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="message"/> is null.</exception>
    /// <exception cref="ProduceException{TKey, TValue}">Serialization failed or librdkafka refused the message.</exception>
    /// <exception cref="NotSupportedException">
    /// The producer has an asynchronous serializer (<see cref="IAsyncSerializer{T}"/>) that did not complete without
    /// waiting, as Confluent's Schema Registry serializers (Avro, JSON Schema) never do: nothing was enqueued; use
    /// <see cref="EnqueueAsync"/>.
    /// </exception>
    /// <exception cref="ProducerFaultedException">The producer hit a fatal error earlier.</exception>
    /// <exception cref="ObjectDisposedException">The producer was disposed.</exception>
    bool TryEnqueue(string topic, Message<TKey, TValue> message, Action<DeliveryReport<TKey, TValue>>? onDelivery = null);

    /// <summary>
    /// Enqueues a message with backpressure, awaits the broker's acknowledgement (per <c>acks</c>) and retries retriable
    /// failures per <see cref="KafkaProducerOptions.Retry"/> (or the pipeline given to the builder).
    /// </summary>
    /// <param name="topic">The topic.</param>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Ends waiting for room and between retries. Cancelling after enqueue does not recall the message: it may still be delivered.</param>
    /// <returns>
    /// The delivery result (partition, offset, timestamp). The task is backed by a pooled completion that is reused once
    /// its result has been read: await it once (or call <see cref="ValueTask{TResult}.AsTask"/> once), as for any
    /// <see cref="ValueTask{TResult}"/>. The code after the await never runs on the producer's delivery thread (it resumes on the
    /// thread pool, or on the awaiting code's captured context).
    /// </returns>
    /// <exception cref="ProduceException{TKey, TValue}">
    /// Delivery failed with a permanent error, or with a retriable one after the last retry; <see cref="KafkaException.Error"/>
    /// says which. With every broker unreachable this is <see cref="ErrorCode.Local_MsgTimedOut"/>, thrown once librdkafka
    /// gave the message up (<c>message.timeout.ms</c> after the call, without a retry: see
    /// <see cref="ProducerRetryOptions"/>). Also thrown at once when the key or value could not be serialized or librdkafka
    /// refused the message (for example larger than <c>message.max.bytes</c>).
    /// </exception>
    /// <exception cref="ProducerCircuitOpenException">
    /// The circuit breaker (<see cref="ProducerRetryOptions.CircuitBreaker"/>) is open: the message was not enqueued;
    /// <see cref="KafkaException.Error"/> carries the code of the last Kafka error it counted.
    /// </exception>
    /// <exception cref="ProducerQueueFullException">The queue stayed full for <see cref="KafkaProducerOptions.MaxBlock"/> (<see cref="ErrorCode.Local_QueueFull"/>).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while waiting for room or between retries.</exception>
    /// <exception cref="ProducerFaultedException">The producer hit a fatal error (<see cref="KafkaException.Error"/> is that error).</exception>
    /// <exception cref="ObjectDisposedException">The producer was disposed.</exception>
    /// <exception cref="ArgumentException"><paramref name="topic"/> is null or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="message"/> is null.</exception>
    /// <remarks>
    /// Every Kafka failure above is a <see cref="KafkaException"/> whose <see cref="KafkaException.Error"/> names the
    /// <see cref="ErrorCode"/>. With a pipeline of your own (<see cref="KafkaProducerBuilder{TKey, TValue}.SetResiliencePipeline"/>)
    /// its own exceptions reach the caller as it throws them (for example Polly's <c>BrokenCircuitException</c>). A call
    /// that throws leaves nothing in flight: its message was never enqueued, or every attempt already has its delivery report.
    /// </remarks>
    ValueTask<DeliveryResult<TKey, TValue>> ProduceAsync(string topic, Message<TKey, TValue> message, CancellationToken cancellationToken = default);

    /// <summary>
    /// Waits until every enqueued message has its outcome, sending lingering batches at once (librdkafka
    /// <c>rd_kafka_flush</c>; <c>linger.ms</c> is not waited out). librdkafka's blocking flush runs on the producer's
    /// delivery-report thread, never on the caller's or a thread-pool thread.
    /// </summary>
    /// <param name="cancellationToken">Ends the wait at once; messages stay queued.</param>
    /// <returns>The number of messages still without an outcome: 0 when all are delivered or failed.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The producer was disposed.</exception>
    ValueTask<int> FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Blocking form of <see cref="FlushAsync"/>, bounded by <paramref name="timeout"/> (to within 50 ms); blocks the
    /// calling thread.
    /// </summary>
    /// <param name="timeout">The longest wait, 0 or more.</param>
    /// <returns>The number of messages still without an outcome.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative.</exception>
    /// <exception cref="ObjectDisposedException">The producer was disposed.</exception>
    int Flush(TimeSpan timeout);

    /// <summary>Gets the underlying Confluent.Kafka producer, for what KafkaKit does not cover (for example admin calls through its handle).</summary>
    /// <remarks>
    /// Producing through it bypasses KafkaKit's backpressure accounting. Its delivery reports are served by KafkaKit's
    /// delivery-report thread (Confluent's background poll is off); calling its <c>Poll</c> or <c>Flush</c> serves them on
    /// the calling thread as well.
    /// </remarks>
    IProducer<TKey, TValue> Inner { get; }
}
