namespace KafkaKit.Consuming;

/// <summary>What a consumer does with a message whose handling failed after its retries, or that could not be deserialized.</summary>
public enum ConsumerErrorAction
{
    /// <summary>
    /// Stop the consumer: the failed message's offset is not committed, so the next owner of the partition receives it
    /// first. Nothing is lost or skipped; the consumer's health turns unhealthy. A consumer run by the host then stops the
    /// application too, unless <see cref="KafkaConsumerOptions.OnFault"/> says to keep it running. The default.
    /// </summary>
    Stop = 0,

    /// <summary>
    /// Produce the original key and value bytes and headers, plus headers naming the source topic, partition, offset,
    /// exception type and message, to the dead-letter topic (<see cref="KafkaConsumerOptions.DeadLetterTopic"/>, default
    /// <c>&lt;topic&gt;.DLT</c>), then go on. If the dead-letter produce itself fails, the consumer stops. The dead-letter
    /// producer (idempotent, <c>acks=all</c>, <c>client.id</c> = the consumer's + <c>"-dlt"</c>) inherits the consumer's
    /// librdkafka properties except the consumer-only ones (so its bootstrap servers, security, SASL, SSL and socket
    /// settings), logs through the consumer's logger, and at stop gets what is left of
    /// <see cref="KafkaConsumerOptions.ShutdownTimeout"/> + <see cref="KafkaConsumerOptions.CloseTimeout"/> to deliver
    /// what is in flight (the rest is purged; those offsets were not committed).
    /// </summary>
    DeadLetter = 1,

    /// <summary>Log the failure, count it (metric <c>kafkakit.consumer.handler.errors</c>) and go on.</summary>
    Skip = 2,

    /// <summary>
    /// Non-blocking retries: write the record (original key, value and headers, plus the headers of
    /// <see cref="RetryTopicHeaders"/>) to the next retry topic (<see cref="KafkaConsumerOptions.RetryTopics"/>, default
    /// <c>&lt;topic&gt;.retry.&lt;n&gt;</c>), commit its offset once the broker acknowledged the write, and go on; the
    /// consumer reads the retry topics too and hands each record to the handler again once its tier's delay has passed.
    /// After the last tier fails the record goes to the dead-letter topic as with <see cref="DeadLetter"/> (headers naming
    /// the original topic, partition and offset). A record never goes back to its source topic or a lower tier, and a
    /// record carrying dead-letter headers is never retried. A retried record leaves its key's order. If a write fails
    /// (after librdkafka's own retries, within <c>message.timeout.ms</c>) the consumer stops and the offset is not
    /// committed. The retry and dead-letter topics must exist: the consumer faults at start naming any that is missing.
    /// Written by the dead-letter producer described under <see cref="DeadLetter"/>.
    /// </summary>
    RetryTopics = 3,
}
