using Confluent.Kafka;

namespace KafkaKit.Producing;

/// <summary>
/// Thrown by <see cref="IKafkaProducer{TKey, TValue}.ProduceAsync"/> while the circuit breaker of
/// <see cref="ProducerRetryOptions.CircuitBreaker"/> is open (or half-open with its one trial produce under way): most
/// recent produces failed with retriable errors, so the call fails at once instead of waiting out
/// <c>message.timeout.ms</c> again. The message was not enqueued and gets no delivery report.
/// </summary>
/// <remarks>
/// <see cref="KafkaException.Error"/> carries the code of the last Kafka error the circuit breaker counted (for example
/// <see cref="ErrorCode.Local_MsgTimedOut"/> while no broker answers), with a reason that says the message was not sent;
/// <see cref="Exception.InnerException"/> is Polly's <c>BrokenCircuitException</c>, whose own inner exception is that
/// last failure.
/// </remarks>
public sealed class ProducerCircuitOpenException : KafkaException
{
    /// <summary>Initializes a new instance of the <see cref="ProducerCircuitOpenException"/> class.</summary>
    /// <param name="topic">The topic the message was for.</param>
    /// <param name="lastError">The last Kafka error the circuit breaker counted.</param>
    /// <param name="retryAfter">How long until the circuit lets a trial produce through, when known.</param>
    /// <param name="innerException">The circuit breaker's exception (Polly's <c>BrokenCircuitException</c>).</param>
    /// <exception cref="ArgumentNullException"><paramref name="topic"/> or <paramref name="lastError"/> is null.</exception>
    public ProducerCircuitOpenException(string topic, Error lastError, TimeSpan? retryAfter, Exception innerException)
        : base(Describe(topic, lastError, retryAfter), innerException)
    {
        Topic = topic;
        RetryAfter = retryAfter;
    }

    /// <summary>Gets the topic the message was for.</summary>
    public string Topic { get; }

    /// <summary>
    /// Gets how long until the circuit lets a trial produce through (at most
    /// <see cref="ProducerRetryOptions.CircuitBreakDuration"/>), or <see langword="null"/> when unknown (half-open: a
    /// trial produce is under way).
    /// </summary>
    public TimeSpan? RetryAfter { get; }

    private static Error Describe(string topic, Error lastError, TimeSpan? retryAfter)
    {
        ArgumentNullException.ThrowIfNull(topic);
        ArgumentNullException.ThrowIfNull(lastError);
        var when = retryAfter is { } after && after > TimeSpan.Zero
            ? $"a trial produce is let through in {after.TotalMilliseconds:F0} ms"
            : "a trial produce is under way";
        return new Error(
            lastError.Code,
            $"Not sent: the producer's circuit breaker is open because most recent produces failed (last: {lastError.Reason} ({lastError.Code})); the message for topic '{topic}' was not enqueued and {when}.");
    }
}
