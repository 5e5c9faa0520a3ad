using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace KafkaKit.Consuming;

/// <summary>Where a record was first consumed from (its retry-topic copies name it in their headers).</summary>
internal readonly record struct RecordOrigin(string Topic, int Partition, long Offset);

/// <summary>A record to write to a retry topic.</summary>
internal readonly record struct RetryRecord(string Topic, int Tier, long DueMs, Message<byte[]?, byte[]?> Message);

/// <summary>
/// <see cref="ConsumerErrorAction.RetryTopics"/>: the retry topics of each source topic, where a failed record goes next
/// (the next tier, never a lower one nor its source; the dead-letter topic after the last tier or for a record that
/// carries dead-letter headers), and when a retry record is due. Immutable after construction: any thread.
/// </summary>
internal sealed class RetryTopicRouter
{
    private readonly Dictionary<string, (string Source, int Tier)> _tiers = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Source, int Tier), string> _names = [];
    private readonly TimeSpan[] _delays;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<ConsumeResult<byte[]?, byte[]?>, Task> _writes = new(ReferenceEqualityComparer.Instance);

    /// <summary>Initializes a new instance of the <see cref="RetryTopicRouter"/> class.</summary>
    /// <param name="options">Validated options with <see cref="ConsumerErrorAction.RetryTopics"/> (topic names, no patterns).</param>
    /// <param name="time">The time source of the due times.</param>
    public RetryTopicRouter(KafkaConsumerOptions options, TimeProvider time)
    {
        _delays = [.. options.RetryTopics.Delays];
        _time = time;
        foreach (var source in options.Topics.Distinct(StringComparer.Ordinal))
        {
            for (var tier = 1; tier <= _delays.Length; tier++)
            {
                var name = options.RetryTopics.TopicFor(source, tier);
                _tiers[name] = (source, tier);
                _names[(source, tier)] = name;
            }
        }

        DeadLetterTopics = options.DeadLetterTopic is { } dlt ? [dlt] : [.. options.Topics.Distinct(StringComparer.Ordinal).Select(t => t + ".DLT")];
    }

    /// <summary>Gets every retry topic, in tier order per source topic (the consumer subscribes to them too).</summary>
    public IReadOnlyCollection<string> Topics => _tiers.Keys;

    /// <summary>Gets the dead-letter topics the last tier writes to.</summary>
    public IReadOnlyList<string> DeadLetterTopics { get; }

    /// <summary>Gets the retry tier of <paramref name="topic"/>: 0 for a source topic.</summary>
    public int TierOf(string topic) => _tiers.TryGetValue(topic, out var entry) ? entry.Tier : 0;

    /// <summary>Gets when a record read from a retry topic is due (Unix ms UTC), or <see langword="null"/> when it is not a retry record or carries no valid due time (then it is due at once).</summary>
    public long? DueOf(ConsumeResult<byte[]?, byte[]?> result) =>
        TierOf(result.Topic) > 0
        && RetryTopicHeaders.Text(result.Message.Headers, RetryTopicHeaders.Due) is { } text
        && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var due) ? due : null;

    /// <summary>Records the retry write of a record handed back as done: its worker completes it once <paramref name="write"/> succeeded (any thread).</summary>
    public void AddWrite(ConsumeResult<byte[]?, byte[]?> record, Task write) => _writes[record] = write;

    /// <summary>Takes the retry write of a record the processor returned as done (its worker, right after).</summary>
    public bool TryTakeWrite(ConsumeResult<byte[]?, byte[]?> record, [NotNullWhen(true)] out Task? write) => _writes.TryRemove(record, out write);

    /// <summary>Gets the current time, Unix ms UTC, on the consumer's time source.</summary>
    public long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Gets where <paramref name="failed"/> was first consumed from.</summary>
    public RecordOrigin OriginOf(ConsumeResult<byte[]?, byte[]?> failed)
    {
        var headers = failed.Message.Headers;
        if (TierOf(failed.Topic) > 0
            && RetryTopicHeaders.Text(headers, RetryTopicHeaders.OriginalTopic) is { } topic
            && int.TryParse(RetryTopicHeaders.Text(headers, RetryTopicHeaders.OriginalPartition), NumberStyles.None, CultureInfo.InvariantCulture, out var partition)
            && long.TryParse(RetryTopicHeaders.Text(headers, RetryTopicHeaders.OriginalOffset), NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
        {
            return new RecordOrigin(topic, partition, offset);
        }

        return new RecordOrigin(failed.Topic, failed.Partition.Value, failed.Offset.Value);
    }

    /// <summary>
    /// The retry record for <paramref name="failed"/>: the next tier after the one it was read from, with the original key,
    /// value and headers and fresh retry headers; <see langword="null"/> when it goes to the dead-letter topic instead
    /// (the last tier failed, or the record carries dead-letter headers: a dead letter is never retried).
    /// </summary>
    public RetryRecord? Next(ConsumeResult<byte[]?, byte[]?> failed, Exception error)
    {
        var headers = failed.Message.Headers;
        var (source, tier) = _tiers.TryGetValue(failed.Topic, out var entry) ? entry : (failed.Topic, 0);
        if (tier >= _delays.Length || (headers is not null && headers.TryGetLastBytes(DeadLetterPublisher.OriginalTopicHeader, out _)))
        {
            return null;
        }

        var origin = OriginOf(failed);
        var originalTimestamp = tier > 0 && RetryTopicHeaders.Text(headers, RetryTopicHeaders.OriginalTimestamp) is { } kept
            ? kept
            : failed.Message.Timestamp.UnixTimestampMs.ToString(CultureInfo.InvariantCulture);
        var next = tier + 1;
        var due = NowMs + (long)_delays[tier].TotalMilliseconds;
        var message = error.Message.Length > RetryTopicHeaders.MaxExceptionMessageLength ? error.Message[..RetryTopicHeaders.MaxExceptionMessageLength] : error.Message;

        var written = new Headers();
        foreach (var header in headers ?? [])
        {
            if (!header.Key.StartsWith("kafkakit-retry-", StringComparison.Ordinal))
            {
                written.Add(header.Key, header.GetValueBytes());
            }
        }

        Add(written, RetryTopicHeaders.Attempt, next.ToString(CultureInfo.InvariantCulture));
        Add(written, RetryTopicHeaders.OriginalTopic, origin.Topic);
        Add(written, RetryTopicHeaders.OriginalPartition, origin.Partition.ToString(CultureInfo.InvariantCulture));
        Add(written, RetryTopicHeaders.OriginalOffset, origin.Offset.ToString(CultureInfo.InvariantCulture));
        Add(written, RetryTopicHeaders.OriginalTimestamp, originalTimestamp);
        Add(written, RetryTopicHeaders.ExceptionType, error.GetType().FullName ?? error.GetType().Name);
        Add(written, RetryTopicHeaders.ExceptionMessage, message);
        Add(written, RetryTopicHeaders.Due, due.ToString(CultureInfo.InvariantCulture));

        // The retry record gets the time of writing (retention of the retry topic counts from now); the original
        // timestamp travels in a header.
        var record = new Message<byte[]?, byte[]?> { Key = failed.Message.Key, Value = failed.Message.Value, Headers = written };
        return new RetryRecord(_names[(source, next)], next, due, record);
    }

    private static void Add(Headers headers, string key, string value) => headers.Add(key, Encoding.UTF8.GetBytes(value));
}
