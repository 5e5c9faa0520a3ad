using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>
/// Thrown when a message cannot be enqueued because librdkafka's local queue stayed full: at once with
/// <see cref="ProducerBackpressure.Fail"/>, or after <see cref="KafkaProducerOptions.MaxBlock"/> with
/// <see cref="ProducerBackpressure.Wait"/>. The message was not enqueued and gets no delivery report.
/// </summary>
/// <remarks><see cref="KafkaException.Error"/> carries <see cref="ErrorCode.Local_QueueFull"/>.</remarks>
public sealed class ProducerQueueFullException : KafkaException
{
    /// <summary>Initializes a new instance of the <see cref="ProducerQueueFullException"/> class.</summary>
    /// <param name="topic">The topic the message was for.</param>
    /// <param name="waited">How long the call waited for room.</param>
    /// <param name="queuedMessages">Messages queued in librdkafka and not yet reported when the call gave up.</param>
    public ProducerQueueFullException(string topic, TimeSpan waited, long queuedMessages)
        : base(new Error(
            ErrorCode.Local_QueueFull,
            $"The producer queue stayed full for {waited.TotalMilliseconds:F0} ms ({queuedMessages} messages awaiting delivery reports); the message for topic '{topic}' was not enqueued. Raise queue.buffering.max.messages / queue.buffering.max.kbytes or MaxBlock, or check that the brokers are reachable."))
    {
        Topic = topic;
        Waited = waited;
        QueuedMessages = queuedMessages;
    }

    /// <summary>Gets the topic the message was for.</summary>
    public string Topic { get; }

    /// <summary>Gets how long the call waited for room (<see cref="TimeSpan.Zero"/> with <see cref="ProducerBackpressure.Fail"/>).</summary>
    public TimeSpan Waited { get; }

    /// <summary>Gets the number of messages awaiting delivery reports when the call gave up.</summary>
    public long QueuedMessages { get; }
}
