using System.Globalization;

namespace KafkaKit.Consuming;

/// <summary>
/// Non-blocking retries through retry topics, for <see cref="ConsumerErrorAction.RetryTopics"/>: a record whose handling
/// failed (after the in-place <see cref="KafkaConsumerOptions.Retry"/>, if any) is written to the first retry topic and its
/// offset committed, so its partition goes on at once; the same consumer reads the retry topics and hands each record to
/// the handler again once its delay has passed; after the last delay it goes to the dead-letter topic.
/// </summary>
/// <remarks>
/// A retried record leaves its key's order: later records of the same key are handled before it. Use the in-place
/// <see cref="KafkaConsumerOptions.Retry"/> with <see cref="ConsumerErrorAction.DeadLetter"/> or
/// <see cref="ConsumerErrorAction.Stop"/> where order matters. The retry topics must exist before the consumer starts.
/// </remarks>
public sealed class RetryTopicOptions
{
    /// <summary>The default of <see cref="NameTemplate"/>.</summary>
    public const string DefaultNameTemplate = "{topic}.retry.{n}";

    /// <summary>The most retry tiers.</summary>
    internal const int MaxTiers = 20;

    /// <summary>The longest delay of one tier: 7 days (Kafka's default <c>retention.ms</c>).</summary>
    internal static readonly TimeSpan MaxDelay = TimeSpan.FromDays(7);

    /// <summary>
    /// Gets the delay of each retry tier, in order: entry <c>n-1</c> is how long after the failure a record written to
    /// retry topic <c>n</c> is handed to the handler again. One topic per entry. Required with
    /// <see cref="ConsumerErrorAction.RetryTopics"/>: 1 to 20 entries, each more than 0 and at most 7 days, each at least
    /// the one before it. Example: <c>[1 s, 10 s, 1 min]</c> (configuration: <c>"00:00:01"</c>, ...).
    /// </summary>
    public IList<TimeSpan> Delays { get; } = new List<TimeSpan>();

    /// <summary>
    /// Gets or sets the retry topics' names: <c>{topic}</c> is replaced by the source topic and <c>{n}</c> by the tier
    /// (1 for the first delay). Default: <c>"{topic}.retry.{n}"</c> (<c>orders.retry.1</c>, <c>orders.retry.2</c>, ...).
    /// Must contain both placeholders and give valid topic names (letters, digits, <c>.</c>, <c>_</c>, <c>-</c>; at most 249 characters).
    /// </summary>
    public string NameTemplate { get; set; } = DefaultNameTemplate;

    /// <summary>The retry topic of tier <paramref name="tier"/> (1-based) for <paramref name="sourceTopic"/>.</summary>
    internal string TopicFor(string sourceTopic, int tier) =>
        NameTemplate.Replace("{topic}", sourceTopic, StringComparison.Ordinal).Replace("{n}", tier.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);

    /// <summary>Lists every problem of these options for a consumer subscribed to <paramref name="topics"/>.</summary>
    internal void Validate(List<string> problems, ConsumerErrorAction onError, IList<string> topics, string? deadLetterTopic)
    {
        if (onError != ConsumerErrorAction.RetryTopics)
        {
            if (Delays.Count > 0)
            {
                problems.Add($"RetryTopics.Delays is set but OnError is {onError}; set OnError to RetryTopics or remove RetryTopics.Delays.");
            }

            return;
        }

        if (Delays.Count is 0 or > MaxTiers)
        {
            problems.Add($"RetryTopics.Delays has {Delays.Count} entries; OnError RetryTopics needs 1 to {MaxTiers} delays (one retry topic each), e.g. [00:00:01, 00:00:10, 00:01:00].");
        }

        for (var i = 0; i < Delays.Count; i++)
        {
            if (Delays[i] <= TimeSpan.Zero || Delays[i] > MaxDelay)
            {
                problems.Add($"RetryTopics.Delays[{i}] is {Delays[i]}; each delay must be more than 0 and at most 7 days.");
            }
            else if (i > 0 && Delays[i] < Delays[i - 1])
            {
                problems.Add($"RetryTopics.Delays[{i}] ({Delays[i]}) is shorter than RetryTopics.Delays[{i - 1}] ({Delays[i - 1]}); each delay must be at least the one before it.");
            }
        }

        if (string.IsNullOrWhiteSpace(NameTemplate) || !NameTemplate.Contains("{topic}", StringComparison.Ordinal) || !NameTemplate.Contains("{n}", StringComparison.Ordinal))
        {
            problems.Add($"RetryTopics.NameTemplate is '{NameTemplate}'; it must contain {{topic}} and {{n}}, e.g. '{DefaultNameTemplate}'.");
            return;
        }

        var retryTopics = new HashSet<string>(StringComparer.Ordinal);
        foreach (var topic in topics.Where(t => !string.IsNullOrWhiteSpace(t)))
        {
            if (topic.StartsWith('^'))
            {
                problems.Add($"Topics entry '{topic}' is a pattern; OnError RetryTopics needs topic names (the retry topics are named after them): list the topics.");
                continue;
            }

            for (var tier = 1; tier <= Math.Min(Delays.Count, MaxTiers); tier++)
            {
                var name = TopicFor(topic, tier);
                if (!IsValidTopicName(name))
                {
                    problems.Add($"RetryTopics.NameTemplate '{NameTemplate}' gives '{name}' for topic '{topic}', which is not a valid topic name (letters, digits, '.', '_', '-'; at most 249 characters).");
                    break;
                }

                retryTopics.Add(name);
            }
        }

        foreach (var topic in topics.Where(t => t is not null && (retryTopics.Contains(t) || t == deadLetterTopic)))
        {
            problems.Add($"Topics entry '{topic}' is a retry or dead-letter topic of this consumer; with OnError RetryTopics the consumer reads its retry topics itself and never its dead-letter topic: remove it.");
        }
    }

    private static bool IsValidTopicName(string name) =>
        name.Length is > 0 and <= 249 && name is not "." and not ".." && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}
