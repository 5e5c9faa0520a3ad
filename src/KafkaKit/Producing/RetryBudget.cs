using Polly;

namespace KafkaKit.Producing;

/// <summary>
/// What one <see cref="IKafkaProducer{TKey, TValue}.ProduceAsync"/> call's retries carry in its Polly context: the call's
/// start, for the time bound (<see cref="ProducerRetryOptions.MaxRetryDuration"/>). (The hand-over of the attempt made
/// before the pipeline is <see cref="Internal.FirstAttempt"/>.)
/// </summary>
internal static class RetryBudget
{
    private static readonly ResiliencePropertyKey<long> Started = new("KafkaKit.ProduceStarted");

    /// <summary>Marks the start of a call.</summary>
    /// <param name="context">The call's context.</param>
    /// <param name="started">When the call started (<see cref="TimeProvider.GetTimestamp"/> of the producer's time source).</param>
    public static void Start(ResilienceContext context, long started) => context.Properties.Set(Started, started);

    /// <summary>Gets how much of <paramref name="budget"/> is left for the call of <paramref name="context"/>.</summary>
    /// <param name="context">The call's context.</param>
    /// <param name="budget">The budget; <see cref="Timeout.InfiniteTimeSpan"/> for none.</param>
    /// <param name="timeProvider">The producer's time source.</param>
    /// <returns>What is left (zero or less when spent); <see cref="TimeSpan.MaxValue"/> without a budget.</returns>
    public static TimeSpan Left(ResilienceContext context, TimeSpan budget, TimeProvider timeProvider)
    {
        if (budget == Timeout.InfiniteTimeSpan || !context.Properties.TryGetValue(Started, out var started))
        {
            return TimeSpan.MaxValue;
        }

        return budget - timeProvider.GetElapsedTime(started);
    }

    /// <summary>
    /// Gets the backoff before retry <paramref name="attempt"/> + 1 when what is left of the budget is shorter than
    /// <paramref name="maxDelay"/>: the exponential delay without jitter, cut to what is left, so the retry still starts
    /// within the budget. Otherwise <see langword="null"/>: Polly's own delay (with jitter, at most
    /// <paramref name="maxDelay"/>) fits.
    /// </summary>
    /// <param name="context">The call's context.</param>
    /// <param name="attempt">The zero-based number of the attempt that failed.</param>
    /// <param name="budget">The budget; <see cref="Timeout.InfiniteTimeSpan"/> for none.</param>
    /// <param name="baseDelay">The first backoff.</param>
    /// <param name="maxDelay">The longest backoff.</param>
    /// <param name="timeProvider">The producer's time source.</param>
    /// <returns>The delay, or <see langword="null"/> for Polly's.</returns>
    public static TimeSpan? CapDelay(ResilienceContext context, int attempt, TimeSpan budget, TimeSpan baseDelay, TimeSpan maxDelay, TimeProvider timeProvider)
    {
        var left = Left(context, budget, timeProvider);
        if (left >= maxDelay)
        {
            return null;
        }

        var exponential = TimeSpan.FromTicks((long)Math.Min(maxDelay.Ticks, baseDelay.Ticks * Math.Pow(2, Math.Min(attempt, 62))));
        return left <= TimeSpan.Zero ? TimeSpan.Zero : left < exponential ? left : exponential;
    }
}
