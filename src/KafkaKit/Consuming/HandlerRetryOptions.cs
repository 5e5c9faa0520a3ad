namespace KafkaKit.Consuming;

/// <summary>
/// Retries of a failed handler call, in place: the partition's later messages wait (their buffer fills and the partition
/// is paused), other partitions and polling go on. Deserialization failures are not retried.
/// </summary>
public sealed class HandlerRetryOptions
{
    /// <summary>Gets or sets how many times a failed call is retried; 0 turns retries off. Default: 3. Range 0 to 1000.</summary>
    public int MaxRetryAttempts { get; set; } = 3;

    /// <summary>Gets or sets the first backoff; later ones grow exponentially, with jitter. Default: 200 ms.</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Gets or sets the longest single backoff. Default: 10 s.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(10);

    internal void Validate(List<string> problems)
    {
        if (MaxRetryAttempts is < 0 or > 1000)
        {
            problems.Add($"Retry.MaxRetryAttempts is {MaxRetryAttempts}; it must be between 0 and 1000.");
        }

        if (BaseDelay <= TimeSpan.Zero)
        {
            problems.Add($"Retry.BaseDelay is {BaseDelay}; it must be more than 0.");
        }

        if (MaxDelay < BaseDelay)
        {
            problems.Add($"Retry.MaxDelay is {MaxDelay}; it must be at least Retry.BaseDelay ({BaseDelay}).");
        }
    }
}
