using Polly;

namespace KafkaKit.Internal;

/// <summary>
/// Hands an attempt made before a retry pipeline ran (KafkaKit's common path: the first produce attempt, the first
/// handler call) to the pipeline as its first attempt's outcome, so attempt counting, backoff and logging stay Polly's.
/// </summary>
internal static class FirstAttempt
{
    private static readonly ResiliencePropertyKey<bool> Taken = new("KafkaKit.FirstAttemptTaken");

    /// <summary>
    /// Returns <see langword="true"/> once per pipeline run: for its first attempt, whose outcome (a failure) was
    /// produced before the pipeline ran.
    /// </summary>
    /// <param name="context">The run's context.</param>
    /// <returns>Whether this is the first attempt.</returns>
    public static bool Take(ResilienceContext context)
    {
        if (context.Properties.TryGetValue(Taken, out var taken) && taken)
        {
            return false;
        }

        context.Properties.Set(Taken, true);
        return true;
    }
}
