namespace KafkaKit.Producing;

/// <summary>What <see cref="IKafkaProducer{TKey, TValue}.EnqueueAsync"/> does when librdkafka's local queue is full.</summary>
/// <remarks>
/// The queue is bounded by the librdkafka properties <c>queue.buffering.max.messages</c> (default 100,000 messages) and
/// <c>queue.buffering.max.kbytes</c> (default 1,048,576 KB); a message occupies it from enqueue until its delivery
/// report.
/// </remarks>
public enum ProducerBackpressure
{
    /// <summary>
    /// Wait asynchronously (no thread blocked) until delivery reports free room, at most
    /// <see cref="KafkaProducerOptions.MaxBlock"/>, honouring the caller's token. The default.
    /// </summary>
    Wait = 0,

    /// <summary>Throw <see cref="ProducerQueueFullException"/> at once.</summary>
    Fail = 1,
}
