namespace KafkaKit.Consuming;

/// <summary>
/// Thrown by a batch handler (<see cref="IKafkaBatchHandler{TKey, TValue}"/>) to say that one message of the batch failed
/// and the ones before it were handled (like Spring Kafka's <c>BatchListenerFailedException</c>).
/// </summary>
/// <remarks>
/// The messages before <see cref="FailedIndex"/> are committed; the failed message is retried alone per
/// <see cref="KafkaConsumerOptions.Retry"/> (each retry a batch of that one message), then goes to
/// <see cref="KafkaConsumerOptions.OnError"/> with <see cref="Exception.InnerException"/> as its error; the messages after
/// it are delivered again, at the start of the next batch. An index outside the batch is logged (event 2101) and the
/// exception counts as a failure of the whole batch.
/// </remarks>
public sealed class KafkaBatchException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="KafkaBatchException"/> class.</summary>
    /// <param name="failedIndex">The index in the batch (0-based) of the message that failed.</param>
    /// <param name="innerException">Why it failed: the error the retries, logs and dead-letter headers report.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="failedIndex"/> is negative.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="innerException"/> is null.</exception>
    public KafkaBatchException(int failedIndex, Exception innerException)
        : base($"Message {failedIndex} of the batch failed: {innerException?.Message}", innerException ?? throw new ArgumentNullException(nameof(innerException)))
    {
        ArgumentOutOfRangeException.ThrowIfNegative(failedIndex);
        FailedIndex = failedIndex;
    }

    /// <summary>Gets the index in the batch (0-based) of the message that failed.</summary>
    public int FailedIndex { get; }
}
