namespace KafkaKit.Producing;

/// <summary>
/// The retry policy KafkaKit applies in <see cref="IKafkaProducer{TKey, TValue}.ProduceAsync"/> to deliveries that failed
/// with a retriable error after librdkafka's own retries (see <see cref="ProduceErrors.IsRetriable"/>).
/// </summary>
/// <remarks>
/// librdkafka already retries transient failures inside <c>message.timeout.ms</c>, and idempotence
/// (<c>enable.idempotence</c>) keeps those internal retries free of duplicates and reordering. An application-level retry
/// is a new produce: it can write a duplicate (when the first attempt was in fact written) and can land after messages
/// produced later. Use it where at-least-once is the contract.
/// <para>
/// A delivery that failed with <c>Local_MsgTimedOut</c> is never sent again: librdkafka spent the message's whole
/// <c>message.timeout.ms</c> retrying it, so another attempt would only make the caller wait that long again to learn of
/// an outage (with every broker down, a call fails once, within <c>message.timeout.ms</c>). To wait longer, raise
/// <c>message.timeout.ms</c>. The retries here serve the errors librdkafka hands back before its time is up (with
/// <c>retries</c> lowered, or errors it does not retry itself).
/// </para>
/// </remarks>
public sealed class ProducerRetryOptions
{
    /// <summary>Gets or sets how many times a failed produce is retried; 0 turns retries off. Default: 3. Range 0 to 100.</summary>
    public int MaxRetryAttempts { get; set; } = 3;

    /// <summary>Gets or sets the first backoff; later ones grow exponentially, with jitter. Default: 200 ms.</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Gets or sets the longest single backoff. Default: 5 s.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets the retry budget of one <see cref="IKafkaProducer{TKey, TValue}.ProduceAsync"/> call, counted from its
    /// start: no retry starts later than this, and a backoff is cut short so the next attempt starts within it; after it,
    /// the last failure is thrown. An attempt already handed to librdkafka is never abandoned (its outcome would be
    /// unknown): it ends with its delivery report, within <c>message.timeout.ms</c>. So a call returns within this budget
    /// plus one attempt. <see cref="Timeout.InfiniteTimeSpan"/> leaves only <see cref="MaxRetryAttempts"/> as the bound.
    /// Default: 30 s.
    /// </summary>
    public TimeSpan MaxRetryDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Gets or sets whether a circuit breaker fails <see cref="IKafkaProducer{TKey, TValue}.ProduceAsync"/> calls fast, with
    /// <see cref="ProducerCircuitOpenException"/> (which carries the last Kafka error), while most recent produces failed
    /// with retriable errors: it opens when at least half of the produces of the last 30 s failed, once 10 or more were
    /// made, stays open <see cref="CircuitBreakDuration"/>, then lets one trial produce through, and closes when that
    /// succeeds. <see cref="IKafkaProducer{TKey, TValue}.EnqueueAsync"/> is not behind it. Default: <see langword="false"/>.
    /// </summary>
    public bool CircuitBreaker { get; set; }

    /// <summary>Gets or sets how long the circuit stays open before a trial produce. Default: 5 s.</summary>
    public TimeSpan CircuitBreakDuration { get; set; } = TimeSpan.FromSeconds(5);

    internal void Validate(List<string> problems)
    {
        if (MaxRetryAttempts is < 0 or > 100)
        {
            problems.Add($"Retry.MaxRetryAttempts is {MaxRetryAttempts}; it must be between 0 and 100.");
        }

        if (BaseDelay <= TimeSpan.Zero)
        {
            problems.Add($"Retry.BaseDelay is {BaseDelay}; it must be more than 0.");
        }

        if (MaxDelay < BaseDelay)
        {
            problems.Add($"Retry.MaxDelay is {MaxDelay}; it must be at least Retry.BaseDelay ({BaseDelay}).");
        }

        if (MaxRetryDuration <= TimeSpan.Zero && MaxRetryDuration != Timeout.InfiniteTimeSpan)
        {
            problems.Add($"Retry.MaxRetryDuration is {MaxRetryDuration}; it must be more than 0, or -00:00:00.001 (Timeout.InfiniteTimeSpan) for no time bound.");
        }

        if (CircuitBreakDuration < TimeSpan.FromMilliseconds(500))
        {
            problems.Add($"Retry.CircuitBreakDuration is {CircuitBreakDuration}; it must be at least 500 ms.");
        }
    }
}
